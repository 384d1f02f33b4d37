"""The guest's initramfs: a cpio writer, ELF library closures, kernel modules, the jinja2
templates of ``initramfs/`` and the cached image builder.

The VM layer calls ``builder.build_base(spec)`` once per image content (cached),
``builder.run_segment(files)`` per run and ``builder.compose(base, segment, out)`` to
get the file QEMU's ``-initrd`` takes.
"""
