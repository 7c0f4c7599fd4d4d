"""Acceptance: the doctor finds the seed write-ups' own mistakes and stays silent on their fixes."""

import pytest

from tests.conftest import needs_fashion_mnist
from trainwise.recipes import RecipeResult, run_recipe


def diagnose(name: str, *overrides: str) -> RecipeResult:
    return run_recipe(name, ["train.doctor=quiet", "train.device=cpu", *overrides], progress=False)


def codes(result: RecipeResult) -> set[str]:
    return {finding.code for finding in result.fit.findings}


def problems(result: RecipeResult) -> set[str]:
    return {f.code for f in result.fit.findings if f.severity != "info"}


def test_w1_raw_lr_1e_2_is_lr_too_high_with_nonfinite_loss_and_unscaled_inputs() -> None:
    result = diagnose("w1-raw-lr1e-2")
    assert codes(result) == {"lr-too-high", "nonfinite-loss", "unscaled-inputs"}
    findings = {f.code: f for f in result.fit.findings}
    assert "learning rate too high" in findings["nonfinite-loss"].message
    assert findings["lr-too-high"].suggestion == "lower lr to about 0.0001"
    # the cause is seen before the symptom: divergence is raised before the loss turns non-finite
    assert findings["lr-too-high"].step is not None and findings["nonfinite-loss"].step is not None
    assert findings["lr-too-high"].step < findings["nonfinite-loss"].step
    unscaled = findings["unscaled-inputs"]
    assert unscaled.subject == "t_u" and unscaled.evidence["rms"] == pytest.approx(54.2, abs=0.1)
    assert "scale inputs by 0.1" in unscaled.suggestion


def test_w1_raw_lr_1e_4_is_unscaled_inputs() -> None:
    result = diagnose("w1-raw-lr1e-4")
    assert "unscaled-inputs" in codes(result) and codes(result) <= {"unscaled-inputs", "lr-too-low"}


def test_w4_rmsprop_as_written_is_lr_too_low() -> None:
    result = diagnose("w4-rmsprop-as-written")
    assert codes(result) == {"lr-too-low"}  # RMSprop's step does not grow with a summed loss: no sum-reduction
    [too_low] = [f for f in result.fit.findings if f.code == "lr-too-low"]
    assert too_low.evidence["update_to_weight"] < 1e-4
    assert too_low.suggestion.startswith("raise lr to about 0.0001")


@pytest.mark.parametrize("name", ["w3-sequential-sgd", "w3-custom-module", "w3-dynamic", "w4-sgd-sum"])
def test_sum_reductions_are_reported_as_info(name: str) -> None:
    result = diagnose(name)
    assert codes(result) == {"sum-reduction"}
    [info] = result.fit.findings
    assert info.severity == "info"
    batch = {"w4-sgd-sum": 2000}.get(name, 64)
    assert info.evidence["batch_size"] == batch


@needs_fashion_mnist
def test_w5_as_written_is_output_class_mismatch() -> None:
    result = diagnose("w5-as-written", "data.limit=2000", "train.epochs=1")
    assert codes(result) == {"output-class-mismatch"}
    [finding] = result.fit.findings
    assert (finding.evidence["outputs"], finding.evidence["classes"]) == (18, 10)
    assert finding.suggestion == "make the last layer produce 10 outputs"


@pytest.mark.parametrize("name", ["w1-normalized", "w1-normalized-3000", "w4-rmsprop", "w3-adam"])
def test_corrected_recipes_have_no_warning_or_error(name: str) -> None:
    assert problems(diagnose(name)) == set()


@needs_fashion_mnist
@pytest.mark.slow
def test_w5_corrected_full_run_has_no_warning_or_error() -> None:
    result = diagnose("w5-corrected")
    assert problems(result) == set()
    assert result.test is not None and result.test["accuracy"] > 0.6
