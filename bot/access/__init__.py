"""Who may do what, where: channel scopes (`/space scope`), private Spaces, the workspace boundary, guests and
readers. `rules` is the pure decision (role × channel scope × private × workspace); `store` keeps scopes in
Redis; `service` applies the decision to commands, buttons and alerts. Imports the core and the commands'
grammar only."""
