"""Who may do what: sign-in, roles, API tokens, and the checks every request passes first."""
