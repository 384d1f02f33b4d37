"""The guest's initramfs: a cpio writer, ELF library closures, kernel modules, the jinja2
templates of ``initramfs/`` and the cached image builder.

    from ktstr.image import builder, templates
    from ktstr.image.modules import ModuleSet

    spec = builder.ImageSpec(
        init=templates.render("init.sh.j2", flavour="exec", results_port="ktstr.results"),
        binaries={"/usr/bin/scx_simple": sched_path},          # + library closure
        files={"/include-files/data.bin": Path("data.bin")},    # plain files
        modules=ModuleSet(tree=kdir / "modules", names=("9p", "9pnet_virtio"),
                          release=kernel_release),              # optional
    )
    base = builder.build_base(spec)             # cached; warm calls only stat inputs
    segment = builder.run_segment({"/ktstr/params.sh": b"KTSTR_MODE=exec\\n"})
    initrd = builder.compose(base, segment, run_dir / "initrd.img")   # -> -initrd
"""
