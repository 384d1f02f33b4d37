"""``@ktstr_test``: scheduler tests as ordinary pytest tests (see docs/pytest.md)."""

from typing import TYPE_CHECKING

from ktstr._lazy import lazy_exports

if TYPE_CHECKING:  # the names below load on first use (importing the package is cheap)
    from ktstr.testkit.context import Ctx, PayloadRun
    from ktstr.testkit.decorator import ktstr_test
    from ktstr.testkit.spec import KtstrTestSpec
    from ktstr.testkit.variants import Variant, expand_variants

_EXPORTS = {
    "Ctx": "ktstr.testkit.context",
    "PayloadRun": "ktstr.testkit.context",
    "ktstr_test": "ktstr.testkit.decorator",
    "KtstrTestSpec": "ktstr.testkit.spec",
    "Variant": "ktstr.testkit.variants",
    "expand_variants": "ktstr.testkit.variants",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = ["Ctx", "KtstrTestSpec", "PayloadRun", "Variant", "expand_variants", "ktstr_test"]
