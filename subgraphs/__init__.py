"""Hub's four subgraph services and the package they share."""
