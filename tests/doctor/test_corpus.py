"""The doctor on its corpus (tests/doctor/corpus/programs): realistic faulty and healthy training programs,
each watched through the public trainwise.watch, each run unmodified under trainwise.autowatch(), each
proving without the doctor that its fault is real.

The bars: at least 95% of faults diagnosed, at most 1 healthy run in 10 warned, a precision of 0.95, no
crash (docs/doctor.md, "Measured accuracy", keeps the table: 100%, 0 of 59, 1.00 today)."""

import pytest

from tests.doctor.corpus import discover, load, misses, proof_lines, run, score, table
from trainwise.doctor import CODES

MIN_DETECTION = 0.95
MAX_FALSE_ALARMS = 0.1
MIN_PRECISION = 0.95


@pytest.fixture(scope="module")
def expectations() -> dict[str, dict[str, list[str]]]:
    return {path.stem: load(path).EXPECT for path in discover()}


def test_the_corpus_covers_every_code_with_several_setups(expectations: dict[str, dict[str, list[str]]]) -> None:
    faults = [name for name, expect in expectations.items() if expect["codes"]]
    healthy = [name for name, expect in expectations.items() if not expect["codes"]]
    assert len(faults) >= 80 and len(healthy) >= 30
    per_code = {code: sum(code in expectations[name]["codes"] for name in faults) for code in CODES}
    thin = {code: n for code, n in per_code.items() if n < 3 and code != "doctor-error"}
    assert not thin, thin
    for name, expect in expectations.items():
        assert set(expect["codes"]) | set(expect.get("also_ok", [])) <= set(CODES), name
        assert name.startswith("healthy") == (not expect["codes"]), name


def test_the_doctor_diagnoses_the_corpus() -> None:
    outcomes = run(discover())
    result = score(outcomes)
    report = table(outcomes) + "\n" + "\n".join(misses(outcomes))
    assert result.crashes == 0, report
    assert result.detection >= MIN_DETECTION, report
    assert result.false_alarm_rate <= MAX_FALSE_ALARMS, report
    assert result.precision >= MIN_PRECISION, report


def test_the_unmodified_programs_under_autowatch_score_within_5_points_of_watch() -> None:
    outcomes = run(discover(), how="autowatch")
    result = score(outcomes)
    report = table(outcomes) + "\n" + "\n".join(misses(outcomes))
    assert result.crashes == 0, report
    assert result.detection >= MIN_DETECTION, report  # watch() diagnoses all of them: within 5 points
    assert result.false_alarm_rate <= MAX_FALSE_ALARMS, report
    assert result.precision >= MIN_PRECISION, report


def test_every_fault_in_the_corpus_is_real_and_every_healthy_program_trains_well() -> None:
    outcomes = run(discover(), how="proof")
    failed = [line for line, o in zip(proof_lines(outcomes), outcomes, strict=True) if not (o.proof or {}).get("ok")]
    assert not failed, "\n".join(failed)
