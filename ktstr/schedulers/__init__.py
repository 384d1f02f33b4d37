"""ktstr's own scheduler declarations (loaded through the ``ktstr.declarations`` group)."""
