"""``@ktstr_test``: scheduler tests as ordinary pytest tests (see docs/pytest.md)."""

from ktstr.testkit.context import Ctx, PayloadRun
from ktstr.testkit.decorator import ktstr_test
from ktstr.testkit.spec import KtstrTestSpec
from ktstr.testkit.variants import Variant, expand_variants

__all__ = ["Ctx", "KtstrTestSpec", "PayloadRun", "Variant", "expand_variants", "ktstr_test"]
