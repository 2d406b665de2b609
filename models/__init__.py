"""Bare nn.Modules and one registry. Knows nothing of Ray, files or training policy."""
