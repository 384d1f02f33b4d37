"""ktstr's own payload declarations (loaded through the ``ktstr.declarations`` group)."""
