"""Pure expansion of a ``@ktstr_test`` into variants (topology x flags x kernel)."""

from __future__ import annotations

from collections.abc import Sequence

from ktstr.declare.base import Frozen
from ktstr.declare.flags import FlagProfile
from ktstr.declare.presets import PRESETS, Preset
from ktstr.declare.topology import Topology
from ktstr.testkit.spec import KtstrTestSpec


class KernelChoice(Frozen):
    """A kernel from ``--ktstr-kernel``: the spec as given and the label for ids."""

    spec: str | None
    label: str


class Variant(Frozen):
    id: str
    topology: Topology
    kernel: KernelChoice
    flags: FlagProfile
    preset: str | None = None
    gauntlet: bool = False


def eligible_profiles(spec: KtstrTestSpec) -> list[FlagProfile]:
    """Profiles holding every required flag and no excluded one."""
    req, exc = set(spec.required_flags), set(spec.excluded_flags)
    return [p for p in spec.scheduler.flag_profiles()
            if req <= set(p.flags) and not exc & set(p.flags)]


def base_profile(spec: KtstrTestSpec) -> FlagProfile:
    """Outside the gauntlet: the smallest eligible profile (``default`` when none required)."""
    profiles = eligible_profiles(spec)
    if not profiles:
        raise ValueError(
            f"no flag profile of {spec.scheduler.name!r} holds {list(spec.required_flags)} "
            "without the excluded flags"
        )
    return min(profiles, key=lambda p: len(p.flags))


def gauntlet_presets(spec: KtstrTestSpec, presets: Sequence[Preset] = PRESETS) -> list[Preset]:
    """Presets the test's constraints accept (the host is judged at run time: SKIP)."""
    cons = spec.constraints
    return [p for p in presets if cons.accepts(p.topology)]


def expand_variants(
    spec: KtstrTestSpec,
    kernels: Sequence[KernelChoice],
    *,
    gauntlet: bool = False,
    presets: Sequence[Preset] = PRESETS,
) -> list[Variant]:
    """Ids: ``1n2l2c1t`` (plus ``-KERNEL`` when several kernels are given), or in the
    gauntlet ``gauntlet-PRESET-PROFILE-KERNEL``."""
    kernels = list(kernels) or [KernelChoice(spec=None, label="default")]
    out: list[Variant] = []
    if not gauntlet:
        t = spec.topology
        prof = base_profile(spec)
        for k in kernels:
            vid = t.label + (f"-{k.label}" if len(kernels) > 1 else "")
            if prof.flags:
                vid += f"-{prof.name}"
            out.append(Variant(id=vid, topology=t, kernel=k, flags=prof))
        return out
    for p in gauntlet_presets(spec, presets):
        for prof in eligible_profiles(spec):
            for k in kernels:
                out.append(Variant(id=f"gauntlet-{p.name}-{prof.name}-{k.label}",
                                   topology=p.topology, kernel=k, flags=prof, preset=p.name,
                                   gauntlet=True))
    return out
