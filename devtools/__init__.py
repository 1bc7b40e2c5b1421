"""Development and test tooling. Never imported by product code."""
