"""The uplink tunnel protocol: token codec, sans-I/O core, client and relay."""
