"""Configuration: the MODBOT_ settings and the watches file."""
