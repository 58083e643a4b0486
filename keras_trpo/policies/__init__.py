"""The policy and value networks: how they are built (``networks``, ``dict_networks`` for Dict
observations)."""
