"""Keys, addresses and the keystore."""
