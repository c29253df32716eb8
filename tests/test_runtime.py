"""Profiles, the read-only config, seeding and the environment report."""

from __future__ import annotations

import dataclasses
import random
import sys

import numpy as np
import pytest

import kitlib
from kitlib import runtime


def test_profile_from_argument_env_or_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KITLIB_PROFILE", raising=False)
    assert runtime.resolve_profile(None, has_accelerator=False) == "cpu"
    assert runtime.resolve_profile(None, has_accelerator=True) == "gpu"
    monkeypatch.setenv("KITLIB_PROFILE", "Smoke ")
    assert runtime.resolve_profile(None, has_accelerator=True) == "smoke"
    assert runtime.resolve_profile("gpu", has_accelerator=False) == "gpu"


def test_unknown_profile_lists_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "fast")
    with pytest.raises(ValueError, match="Unknown profile 'fast'. Choose one of smoke, cpu, gpu"):
        kitlib.setup(verbose=False)


def test_setup_returns_a_read_only_config(kit_env, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    cfg = kitlib.setup()
    out = capsys.readouterr().out
    assert "profile: smoke" in out and "device: CPU" in out and "tensorflow 2." in out
    assert cfg.profile == "smoke" and cfg.offline and cfg.cache_dir == kit_env / "cache"
    assert cfg.strategy.num_replicas_in_sync == 1 and not cfg.mixed_precision
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.profile = "gpu"  # type: ignore[misc]
    assert cfg.pick(smoke=1, cpu=2, gpu=3) == 1


def test_setup_seeds_everything(kit_env, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    monkeypatch.setenv("KITLIB_PROFILE", "smoke")
    draws = []
    for _ in range(2):
        kitlib.setup(verbose=False, seed=3)
        layer = keras.layers.Dense(2)
        layer.build((1, 2))
        draws.append((random.random(), np.random.rand(), layer.kernel.numpy().tolist()))
    assert draws[0] == draws[1]


def test_mixed_precision_only_on_accelerators_in_the_gpu_profile() -> None:
    assert runtime.precision_policy("gpu", "GPU (Tesla T4)") == "mixed_float16"
    assert runtime.precision_policy("gpu", "2 GPUs") == "mixed_float16"
    assert runtime.precision_policy("gpu", "TPU (grpc://x)") == "mixed_bfloat16"
    assert runtime.precision_policy("gpu", "CPU (2 cores)") == "float32"
    assert runtime.precision_policy("cpu", "GPU (Tesla T4)") == "float32"


def test_colab_without_gpu_is_told_what_to_click(kit_env, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    import subprocess

    calls, real_run = [], subprocess.run

    def no_real_pip(command, *args, **kwargs):  # whatever this stack lacks, the test never installs it for real
        if "pip" not in list(command):
            return real_run(command, *args, **kwargs)
        calls.append(list(command))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(subprocess, "run", no_real_pip)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    kitlib.setup(profile="smoke")
    assert "Runtime > Change runtime type > GPU" in capsys.readouterr().out
    for command in calls:  # a pip call, if this stack needs one, keeps TensorFlow through its constraints
        assert command[1:4] == ["-m", "pip", "install"] and "--constraint" in command, command
        assert not any(part.split("=")[0].lower() == "tensorflow" for part in command), command


MINIMA = {"tensorflow": "2.19.1", "keras": "3.10.0", "keras-hub": "0.25.1", "psutil": "7.0.0"}
# `pip list --format=freeze` of Colab-like runtimes (the part that matters), as recorded on their images.
COLAB_2_20 = """tensorflow==2.20.0
tensorflow-text==2.20.1
tf_keras==2.20.1
keras==3.11.3
keras-hub==0.22.2
keras-nlp==0.22.2
tensorboard==2.20.0
numpy==2.0.2
ml-dtypes==0.5.3
protobuf==5.29.5
jax==0.5.3
jaxlib==0.5.3
jax-cuda12-plugin==0.5.3
nvidia-cudnn-cu12==9.3.0.75
nvidia-cublas-cu12==12.5.3.2
torch==2.8.0+cu126
psutil==5.9.5
"""


def freeze(text: str) -> dict[str, str]:
    """{normalised name: version} from `pip list --format=freeze` lines, as runtime.installed_distributions gives."""
    import re

    pairs = (line.split("==") for line in text.split())
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pairs}


def test_colab_keeps_tensorflow_keras_and_the_cuda_linked_packages() -> None:
    kept = runtime.colab_constraints(freeze(COLAB_2_20))
    assert kept == ["jax-cuda12-plugin==0.5.3", "jax==0.5.3", "jaxlib==0.5.3", "keras==3.11.3", "ml-dtypes==0.5.3",
                    "numpy==2.0.2", "nvidia-cublas-cu12==12.5.3.2", "nvidia-cudnn-cu12==9.3.0.75",
                    "protobuf==5.29.5", "tensorboard==2.20.0", "tensorflow==2.20.0", "tf-keras==2.20.1",
                    "torch==2.8.0+cu126"]
    assert not any(k.startswith(("keras-hub", "tensorflow-text", "keras-nlp", "psutil")) for k in kept), \
        "what the kit may move is not kept"


def test_colab_asks_for_what_is_missing_or_old_and_keras_nlp_follows_keras_hub() -> None:
    installed = freeze(COLAB_2_20)
    assert runtime.colab_requirements(installed, MINIMA) == ["keras-hub>=0.25.1", "psutil>=7.0.0", "keras-nlp"]
    installed.update({"keras-hub": "0.26.0", "tensorflow-text": "2.19.0"})
    assert runtime.colab_requirements(installed, MINIMA) == ["tensorflow-text==2.20.*", "psutil>=7.0.0"]
    installed.update({"tensorflow-text": "2.20.1", "psutil": "7.0.0"})
    assert runtime.colab_requirements(installed, MINIMA) == []
    del installed["keras-hub"]
    assert runtime.colab_requirements(installed, MINIMA) == ["keras-hub>=0.25.1", "keras-nlp"], "a missing package"
    assert runtime.colab_requirements({"numpy": "2.0.2"}, MINIMA) == [], "no TensorFlow: nothing to match"


def test_colab_with_a_tensorflow_below_the_floor_stops_with_a_sentence() -> None:
    installed = {**freeze(COLAB_2_20), "tensorflow": "2.19.0"}
    with pytest.raises(runtime.ColabStackError, match="TensorFlow 2.19.0 is older than the 2.19.1 the kit needs, and "
                                                      "the kit will not replace it .* choose a newer runtime"):
        runtime.colab_requirements(installed, MINIMA)


def test_split_cpu_gives_mirrored_strategy_two_replicas_and_refuses_once_devices_are_set() -> None:
    import subprocess
    import textwrap

    script = textwrap.dedent("""
        import tensorflow as tf
        from kitlib import runtime
        devices = runtime.split_cpu(2)
        print(devices, tf.distribute.MirroredStrategy(devices).num_replicas_in_sync)
        print(runtime.split_cpu(2) == devices)  # a rerun of the cell
        try:
            runtime.split_cpu(3)
        except RuntimeError as error:
            print(error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert lines[0] == "['/device:CPU:0', '/device:CPU:1'] 2", out
    assert lines[1] == "True", out
    assert "already set up its devices" in lines[2] and "Restart the kernel" in lines[2], out


def test_split_cpu_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        runtime.split_cpu(0)


@pytest.fixture
def restore_policy():
    """Put Keras' global precision policy back after a test that lets setup() change it."""
    import keras

    before = keras.mixed_precision.global_policy().name
    yield
    keras.mixed_precision.set_global_policy(before)


@pytest.mark.parametrize("policy", runtime.POLICIES)
def test_kitlib_precision_overrides_the_profile_and_setup_says_so(kit_env, monkeypatch, capsys, restore_policy,
                                                                  policy: str) -> None:
    import keras

    monkeypatch.setenv("KITLIB_PRECISION", f" {policy.upper()} ")
    cfg = kitlib.setup(profile="smoke")
    assert (cfg.precision, cfg.mixed_precision) == (policy, policy != "float32")
    assert keras.mixed_precision.global_policy().name == policy
    assert f"precision: {policy} (set by KITLIB_PRECISION)" in capsys.readouterr().out


def test_without_kitlib_precision_the_profile_decides_and_says_why(monkeypatch) -> None:
    monkeypatch.delenv("KITLIB_PRECISION", raising=False)
    assert runtime.resolve_precision("smoke", "GPU (T4)") == ("float32", "the smoke profile computes in float32")
    assert runtime.resolve_precision("gpu", "GPU (T4)") == ("mixed_float16", "the gpu profile's policy on a GPU")
    assert runtime.resolve_precision("gpu", "TPU (x)") == ("mixed_bfloat16", "the gpu profile's policy on a TPU")
    assert runtime.resolve_precision("gpu", "CPU (2 cores)")[0] == "float32"
    monkeypatch.setenv("KITLIB_PRECISION", "float16")
    with pytest.raises(ValueError, match="KITLIB_PRECISION='float16' is not .* float32, mixed_float16, mixed_bfloat16"):
        runtime.resolve_precision("gpu", "GPU (T4)")


def test_kitlib_replicas_takes_the_several_device_branch_on_a_split_cpu() -> None:
    import os
    import subprocess

    script = ("import kitlib; cfg = kitlib.setup(profile='smoke'); "
              "print(type(cfg.strategy).__name__, cfg.replicas, cfg.batch_size, cfg.strategy.extended.worker_devices)")
    env = {**os.environ, "KITLIB_REPLICAS": "2", "KITLIB_OFFLINE": "1", "KITLIB_DATA_DIR": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    assert "MirroredStrategy (2 replica(s), global batch 128)" in out and "as 2 logical devices" in out, out
    # the global batch is the profile's 64 per replica times 2 (lesson 10's rule), on two logical CPU devices
    assert out.strip().splitlines()[-1] == "MirroredStrategy 2 128 ('/job:localhost/replica:0/task:0/device:CPU:0', " \
        "'/job:localhost/replica:0/task:0/device:CPU:1')", out


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_kitlib_replicas_must_be_a_positive_whole_number(monkeypatch, value: str) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("KITLIB_REPLICAS", value)
    with pytest.raises(ValueError, match=f"KITLIB_REPLICAS='{value}': expected a whole number of replicas, 1 or more"):
        runtime.replicas_requested()


def test_a_cluster_worker_builds_its_own_strategy_whatever_kitlib_replicas(monkeypatch) -> None:
    monkeypatch.setenv("KITLIB_REPLICAS", "2")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert runtime.replicas_requested() == 2
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}')
    assert runtime.replicas_requested() == 1


def test_sizes_pick_a_profiles_knobs_without_setting_anything_up():
    from kitlib.models import finetuned

    assert runtime.Sizes("gpu").pick(smoke=1, cpu=2, gpu=3) == 3
    assert finetuned.TextRecipe.for_profile(runtime.Sizes("gpu")).seq_length == 512
    with pytest.raises(ValueError, match="expected one of smoke, cpu, gpu"):
        runtime.Sizes("tpu").pick(smoke=1, cpu=2, gpu=3)
