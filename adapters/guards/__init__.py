"""Guards shared across adapters: the SSRF host policy and the size-capped body reader (every
adapter that talks HTTP), and the environment rule (the shell adapter and the validator).

They sit beside the adapter packages, not inside one, so each rule exists once, and the validator
can import the env rule without loading an adapter.
"""
