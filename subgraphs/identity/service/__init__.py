"""Identity's domain rules, one module per concern. GraphQL and REST both call these.

accounts       registration, email verification, passwords, activation
sessions       login, tokens, refresh rotation, logout, session listing
mfa            TOTP enrollment, recovery codes, the MFA step of login
access         organizations, memberships, roles
audit          the security event log
"""
