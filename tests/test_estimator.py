"""trainwise.Estimator: scikit-learn's estimator contract, and the numbers it trains to."""

import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import trainwise
from trainwise import Estimator
from trainwise.errors import ConfigError

from .conftest import subprocess_env

# every fit on the CPU, on any machine: the tests compare numbers to the last bit between fits


def linear(n_features_in: int, n_outputs: int) -> nn.Module:
    return nn.Linear(n_features_in, n_outputs)


def mlp(n_features_in: int, n_outputs: int, hidden: int = 16, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Linear(n_features_in, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_outputs))


def classifier(**params: Any) -> Estimator:
    return Estimator(linear, **{"loss": "cross_entropy", "lr": 0.05, "epochs": 20, "device": "cpu", **params})


def blobs(n: int = 120, classes: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes around centers 4 apart in 3-D: a linear model separates them."""
    random = np.random.RandomState(seed)
    y = np.arange(n) % classes
    centers = 4.0 * np.eye(classes, 3)
    return centers[y] + random.randn(n, 3), y


def line(n: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """y = 3x + 2 for x in [-1, 1]."""
    x = np.random.RandomState(seed).uniform(-1, 1, size=(n, 1))
    return x, 3.0 * x[:, 0] + 2.0


def test_classifier_separates_blobs_and_scores_accuracy() -> None:
    X, y = blobs()
    net = classifier().fit(X, y)
    predicted = net.predict(X)
    assert accuracy_score(y, predicted) >= 0.95
    assert net.score(X, y) == accuracy_score(y, predicted)
    assert net.score(X, y, sample_weight=np.arange(len(y))) == accuracy_score(
        y, predicted, sample_weight=np.arange(len(y))
    )
    proba = net.predict_proba(X)
    assert proba.shape == (len(y), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.array_equal(net.classes_[proba.argmax(axis=1)], predicted)
    assert net.n_features_in_ == 3
    assert isinstance(net.model_, nn.Linear) and net.model_.out_features == 2  # n_outputs: one per class
    assert len(net.history_["loss"]) == 20 and net.history_["loss"][-1] < net.history_["loss"][0] / 5
    assert is_classifier(net) and not is_regressor(net)


def test_regressor_recovers_a_line_and_scores_r2() -> None:
    X, y = line()
    net = Estimator(linear, loss="mse", lr=0.1, epochs=60, device="cpu").fit(X, y)
    predicted = net.predict(X)
    assert predicted.shape == (80,)  # y's shape, though the model's outputs are (80, 1)
    assert net.score(X, y) == pytest.approx(r2_score(y, predicted), abs=1e-12)
    assert net.score(X, y) > 0.9999
    assert net.model_.weight.item() == pytest.approx(3.0, abs=0.02)
    assert net.model_.bias.item() == pytest.approx(2.0, abs=0.02)
    assert is_regressor(net) and not is_classifier(net)
    assert not hasattr(net, "predict_proba")


def test_multioutput_regression_keeps_y_shape() -> None:
    X, y = line()
    Y = np.column_stack([y, -2.0 * X[:, 0]])  # (n, 2): a model with two outputs
    net = Estimator(linear, loss="mse", lr=0.1, epochs=60, device="cpu").fit(X, Y)
    assert net.predict(X).shape == (80, 2)
    assert net.score(X, Y) > 0.999
    assert net.model_.weight.detach().numpy().ravel() == pytest.approx([3.0, -2.0], abs=0.03)


def test_string_and_gapped_labels_round_trip() -> None:
    X, codes = blobs(classes=3)
    names = np.array(["setosa", "versicolor", "virginica"])[codes]
    net = classifier(epochs=30).fit(X, names)
    assert list(net.classes_) == ["setosa", "versicolor", "virginica"]
    assert net.predict(X).dtype == names.dtype
    assert accuracy_score(names, net.predict(X)) >= 0.95
    gapped = np.array([3, 7, 11])[codes]
    by_int = classifier(epochs=30).fit(X, gapped)
    assert list(by_int.classes_) == [3, 7, 11]
    assert set(by_int.predict(X)) == {3, 7, 11}
    # the model saw the indices 0..2 either way: the same weights, the same predictions up to the labels
    assert np.array_equal(
        np.searchsorted(by_int.classes_, by_int.predict(X)), np.searchsorted(net.classes_, net.predict(X))
    )


def test_binary_losses_take_one_output_and_two_classes() -> None:
    X, codes = blobs()
    labels = np.array(["no", "yes"])[codes]
    net = classifier(loss="bce_with_logits").fit(X, labels)
    assert net.model_.out_features == 1
    assert accuracy_score(labels, net.predict(X)) >= 0.95
    proba = net.predict_proba(X)
    logits = net.model_(torch.tensor(X, dtype=torch.float32)).detach().double().numpy().ravel()
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-logits)), rtol=1e-12)
    assert np.array_equal(net.predict(X), np.where(logits > 0, "yes", "no"))
    X3, y3 = blobs(classes=3)
    with pytest.raises(ValueError, match="needs 2 classes, but y has 3"):
        classifier(loss="bce_with_logits").fit(X3, y3)


def test_cross_val_score_equals_the_same_folds_by_hand() -> None:
    X, y = blobs(n=90)
    net = classifier(epochs=10)
    scores = cross_val_score(net, X, y, cv=3)  # a classifier: sklearn picks stratified folds (from the tags)
    by_hand = [
        clone(net).fit(X[train], y[train]).score(X[test], y[test]) for train, test in StratifiedKFold(3).split(X, y)
    ]
    assert len(scores) == 3
    assert list(scores) == by_hand  # deterministic: the same folds, the same seed, the same models
    assert min(scores) >= 0.9


def test_pipeline_scales_before_the_regressor() -> None:
    X, y = line(n=90)
    X_raw = 1000.0 * X + 50.0  # unscaled inputs: the scaler makes them trainable at lr 0.1
    pipe = make_pipeline(StandardScaler(), Estimator(linear, loss="mse", lr=0.1, epochs=60, device="cpu"))
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipe, X_raw, y, cv=folds)
    by_hand = [clone(pipe).fit(X_raw[a], y[a]).score(X_raw[b], y[b]) for a, b in folds.split(X_raw)]
    assert list(scores) == by_hand
    assert min(scores) > 0.999


def test_grid_search_picks_the_good_lr() -> None:
    X, y = blobs(n=90)
    search = GridSearchCV(classifier(epochs=10), {"lr": [1e-6, 0.05]}, cv=3).fit(X, y)
    bad, good = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"lr": 0.05}
    assert good >= 0.9 and bad < 0.8
    assert search.best_estimator_.lr == 0.05 and search.score(X, y) >= 0.95


def test_grid_search_over_a_model_keyword() -> None:
    # XOR: one hidden unit cannot separate it, sixteen can
    random = np.random.RandomState(0)
    X = random.uniform(-1, 1, size=(160, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    net = Estimator(mlp, loss="cross_entropy", lr=0.05, epochs=40, device="cpu")
    search = GridSearchCV(net, {"model_kwargs__hidden": [1, 16]}, cv=KFold(2, shuffle=True, random_state=0))
    search.fit(X, y)
    narrow, wide = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"model_kwargs__hidden": 16}
    assert wide >= 0.9 and narrow <= 0.8
    assert search.best_estimator_.model_[0].out_features == 16


def test_model_kwargs_parameters_get_set_and_clone() -> None:
    kwargs = {"hidden": 8}
    net = Estimator(mlp, loss="mse", model_kwargs=kwargs)
    assert net.get_params()["model_kwargs__hidden"] == 8
    assert "model_kwargs__hidden" not in net.get_params(deep=False)
    net.set_params(model_kwargs__hidden=4, model_kwargs__dropout=0.1, lr=0.5)
    assert net.model_kwargs == {"hidden": 4, "dropout": 0.1} and net.lr == 0.5
    assert kwargs == {"hidden": 8}  # the caller's dict is never changed
    assert Estimator(mlp, loss="mse").set_params(model_kwargs__hidden=2).model_kwargs == {"hidden": 2}
    with pytest.raises(ValueError, match="Invalid parameter"):
        net.set_params(hiden=3)


def test_clone_is_unfitted_with_equal_params() -> None:
    X, y = blobs()
    net = classifier(model_kwargs={}, random_state=3).fit(X, y)
    copy = clone(net)
    assert copy.get_params() == net.get_params()
    assert copy.model_kwargs is not net.model_kwargs
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    with pytest.raises(NotFittedError):
        copy.predict(X)
    # the clone trains to the same model as the original did
    assert np.array_equal(copy.fit(X, y).predict_proba(X), net.predict_proba(X))


def test_predict_before_fit_raises_not_fitted() -> None:
    X, _ = blobs()
    for method in ("predict", "predict_proba"):
        with pytest.raises(NotFittedError):
            getattr(classifier(), method)(X)
    with pytest.raises(NotFittedError):
        Estimator(linear, loss="mse").predict(X)


def test_same_random_state_same_model_and_different_state_another() -> None:
    X, y = blobs()

    def proba(seed: int | None) -> np.ndarray:
        net = Estimator(mlp, loss="cross_entropy", model_kwargs={"dropout": 0.2}, epochs=5, random_state=seed)
        return net.set_params(device="cpu").fit(X, y).predict_proba(X)

    assert np.array_equal(proba(1), proba(1))
    assert not np.allclose(proba(1), proba(2))
    before = torch.get_rng_state()
    proba(None)  # draws its seed from NumPy's generator; torch's is left as it was
    assert torch.equal(torch.get_rng_state(), before)


def test_fit_kwargs_reach_trainwise_fit() -> None:
    X, y = line()
    net = Estimator(
        linear, loss="mse", lr=0.1, epochs=60, device="cpu", fit_kwargs={"normalize": "standard", "val_split": 0.25}
    )
    net.fit(100.0 * X, y)  # standardized by fit; predict applies the same scaling
    assert net.result_.transform is not None
    assert net.score(100.0 * X, y) > 0.999
    assert len(net.history_["val_loss"]) == 60
    assert net.findings_ == net.result_.findings


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")  # pandas, array API: not installed
def test_passes_sklearn_check_estimator() -> None:
    # every common check of scikit-learn's, classifier and regressor, on the model sized by the data
    check_estimator(classifier(lr=0.1, epochs=10, batch_size=None))
    check_estimator(Estimator(linear, loss="mse", lr=0.1, epochs=20, batch_size=None, device="cpu"))


def test_mistakes_are_named() -> None:
    X, y = blobs()
    with pytest.raises(ConfigError, match=r"model_fn: expected a function or nn\.Module class"):
        Estimator(nn.Linear(3, 2), loss="cross_entropy").fit(X, y)
    with pytest.raises(ConfigError, match=r"outputs of shape \(3,\) per sample, but y has 2 classes"):
        Estimator(lambda: nn.Linear(3, 3), loss="cross_entropy").fit(X, y)
    with pytest.raises(ConfigError, match=r"outputs of shape \(2,\) per sample, but y has 1 value"):
        Estimator(lambda: nn.Linear(3, 2), loss="mse").fit(X, y.astype(float))
    with pytest.raises(ConfigError, match="fit_kwargs: 'lr'"):
        classifier(fit_kwargs={"lr": 1.0}).fit(X, y)
    with pytest.raises(ConfigError, match="loss 'mse' is a regression loss"):
        Estimator(linear, loss="mse", task="classification").fit(X, y)
    net = classifier().fit(X, y)
    with pytest.raises(ValueError, match="X has 2 features, but Estimator is expecting 3"):
        net.predict(X[:, :2])


def test_a_diverging_fit_warns_with_the_doctor_finding() -> None:
    X, y = line()
    net = Estimator(lambda: nn.Linear(1, 1), loss="mse", optimizer="sgd", lr=10.0, epochs=10, device="cpu")
    with pytest.warns(RuntimeWarning, match="nonfinite-loss"):
        net.fit(100.0 * X, y)
    assert "nonfinite-loss" in [finding.code for finding in net.findings_]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy fit warns about nothing
        Estimator(linear, loss="mse", lr=0.1, epochs=5, device="cpu").fit(X, y)


def test_import_trainwise_needs_no_sklearn() -> None:
    code = (
        "import sys\n"
        "import trainwise\n"
        "print(any(name.split('.')[0] == 'sklearn' for name in sys.modules))\n"  # loaded only when asked for
        "sys.modules['sklearn'] = None\n"  # from here on, as if scikit-learn were not installed
        "print(trainwise.Estimator.__name__)\n"
        "try:\n"
        "    trainwise.Estimator(lambda: None, loss='mse')\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    loaded, name, error = done.stdout.splitlines()
    assert (loaded, name) == ("False", "Estimator")
    assert error.startswith("trainwise.Estimator needs scikit-learn: pip install 'trainwise[sklearn]'")
    assert "Estimator" in trainwise.__all__
