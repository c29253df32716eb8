"""Profiles, seeding, device and distribution strategy: what `kitlib.setup()` decides for a lesson."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import re
import socket
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

from kitlib import progress

PROFILES = ("smoke", "cpu", "gpu")
# Wall-clock budgets of a lesson and of the whole course (seconds), kept by `make results` and the tables: a lesson
# over its budget is a finding to fix. smoke: every lesson a test in about a minute; cpu: the course on 2 cores.
LESSON_BUDGET = {"smoke": 90, "cpu": 360}
COURSE_BUDGET = {"cpu": 1800}

# Data sizes and training scale per profile; lesson-specific knobs use `Config.pick`.
_SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(train_size=4000, val_size=500, test_size=1000, batch_size=64),
    "cpu": dict(train_size=None, val_size=2500, test_size=None, batch_size=64),
    "gpu": dict(train_size=None, val_size=5000, test_size=None, batch_size=128),
}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """A profile's knobs without the rest of a run's set-up: the gpu profile's sizes read on a CPU, for example, to
    check them before paying for a GPU (`TextRecipe.for_profile(Sizes("gpu"))`)."""

    profile: str

    def pick(self, *, smoke: Any, cpu: Any, gpu: Any) -> Any:
        """Return the value given for this profile (one knob, three sizes)."""
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}: expected one of {', '.join(PROFILES)}")
        return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[self.profile]


@dataclasses.dataclass(frozen=True)
class Config:
    """Read-only settings of one lesson run; the notebook's knobs read from it."""

    profile: str
    seed: int
    device: str
    strategy: Any
    mixed_precision: bool
    precision: str  # the Keras policy in force: float32, mixed_float16 or mixed_bfloat16
    precision_reason: str  # why: the profile's choice for the device, or KITLIB_PRECISION
    offline: bool
    train_size: int | None
    val_size: int
    test_size: int | None
    batch_size: int  # the global batch: the profile's batch per replica x the strategy's replicas (lesson 10's rule)
    cache_dir: Path
    data_dir: Path | None
    results_dir: Path
    fit_verbose: int | str = 2  # fit(verbose=...): a per-step bar where someone watches, else a line an epoch

    @property
    def replicas(self) -> int:
        """How many replicas the strategy keeps in sync."""
        return self.strategy.num_replicas_in_sync

    def pick(self, *, smoke: Any, cpu: Any, gpu: Any) -> Any:
        """Return the value given for the active profile (one knob, three sizes)."""
        return Sizes(self.profile).pick(smoke=smoke, cpu=cpu, gpu=gpu)


def env_flag(name: str) -> bool:
    """True when an environment variable is set to a truthy value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The kit's cache folder: `KITLIB_CACHE`, else the user's cache dir."""
    if os.environ.get("KITLIB_CACHE"):
        return Path(os.environ["KITLIB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "kitlib"


CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"


def data_dir() -> Path | None:
    """The pre-fetched data folder: `KITLIB_DATA_DIR` (empty: none), else a checkout's `data/`, else None."""
    value = os.environ.get("KITLIB_DATA_DIR")
    if value is not None:
        return Path(value).expanduser() if value else None
    return CHECKOUT_DATA if (CHECKOUT_DATA / "datasets.json").exists() else None


@functools.lru_cache(maxsize=None)
def network_available(host: str = "www.kaggle.com", port: int = 443, timeout: float = 3.0) -> bool:
    """True when a TCP connection to the model hub's host opens (checked once per process)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def results_dir() -> Path:
    """Where lessons write their result records: `KITLIB_RESULTS`, else `<cache>/results`."""
    value = os.environ.get("KITLIB_RESULTS")
    return Path(value).expanduser() if value else cache_dir() / "results"


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what TensorFlow's C++ side writes to fd 2 while it loads (absl start-up chatter)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def replicas_requested() -> int:
    """`KITLIB_REPLICAS`: how many logical devices to split a CPU into for a MirroredStrategy (default 1: no split).

    A worker of a cluster (`TF_CONFIG` set, lesson 10) gets 1: its MultiWorkerMirroredStrategy must be the first
    strategy the process builds, and it brings its own replicas.
    """
    if os.environ.get("TF_CONFIG"):
        return 1
    value = os.environ.get("KITLIB_REPLICAS", "").strip() or "1"
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"KITLIB_REPLICAS={value!r}: expected a whole number of replicas, 1 or more "
                         "(e.g. KITLIB_REPLICAS=2 to run the several-device path on two logical CPU devices).")
    return int(value)


def _accelerators(cpu_replicas: int = 1) -> tuple[str, Any]:
    """Find a TPU or GPUs and return (device description, tf.distribute strategy).

    Without an accelerator, `cpu_replicas` > 1 splits the CPU into that many logical devices (`split_cpu`) and
    takes the several-device branch, a MirroredStrategy over them: the path several GPUs take, on a CPU.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")  # lists without starting the runtime, so the CPU can still split
    if cpu_replicas > 1 and not gpus:
        devices = split_cpu(cpu_replicas)
        return f"CPU ({os.cpu_count()} cores as {len(devices)} logical devices)", tf.distribute.MirroredStrategy(devices)
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return f"TPU ({resolver.master()})", tf.distribute.TPUStrategy(resolver)
    except (ValueError, RuntimeError, tf.errors.NotFoundError):
        pass
    if len(gpus) > 1:
        return f"{len(gpus)} GPUs", tf.distribute.MirroredStrategy()
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        return f"GPU ({name})", tf.distribute.get_strategy()
    return f"CPU ({os.cpu_count()} cores)", tf.distribute.get_strategy()


def split_cpu(n: int) -> list[str]:
    """Split the CPU into `n` logical devices and return their names, for a MirroredStrategy on a CPU (lesson 10).

    TensorFlow fixes its devices the first time it runs an op, so call this before anything runs on a
    device (`kitlib.setup()` does not); calling it again with the same `n` returns the same devices.
    """
    import tensorflow as tf

    if n < 1:
        raise ValueError(f"split_cpu needs at least 1 logical device, got n={n}.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) != n:
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
        except RuntimeError as error:
            raise RuntimeError(
                f"TensorFlow has already set up its devices, so the CPU can no longer be split into {n}. "
                "Restart the kernel and call split_cpu before the first TensorFlow operation.") from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def resolve_profile(requested: str | None, has_accelerator: bool) -> str:
    """The profile to use: the argument, else `KITLIB_PROFILE`, else gpu/cpu by hardware."""
    name = (requested or os.environ.get("KITLIB_PROFILE") or "").strip().lower()
    if not name:
        return "gpu" if has_accelerator else "cpu"
    if name not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}. Choose one of {', '.join(PROFILES)} "
            "(set KITLIB_PROFILE or pass kitlib.setup(profile=...))."
        )
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras (`keras.utils.set_random_seed`), and make TF ops deterministic."""
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)  # for child processes: this one's hash seed was fixed at start-up
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def versions() -> dict[str, str]:
    """Versions of Python and the main libraries the lessons use."""
    found = {"python": platform.python_version()}
    for package in ("tensorflow", "keras", "keras-hub", "tensorflow-hub", "numpy"):
        found[package] = installed_version(package) or "not installed"
    return found


POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def precision_policy(profile: str, device: str) -> str:
    """The profile's own policy: mixed precision in the gpu profile on accelerators (float16 on GPU, bfloat16 on TPU)."""
    if profile != "gpu":
        return "float32"
    if device.startswith("TPU"):
        return "mixed_bfloat16"
    return "mixed_float16" if "GPU" in device else "float32"


@contextlib.contextmanager
def precision_scope(policy: str) -> Iterator[None]:
    """Build models under the Keras precision `policy` inside the block, then put the global policy back."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def resolve_precision(profile: str, device: str) -> tuple[str, str]:
    """(policy, why): `KITLIB_PRECISION` when set, else the profile's policy for this device."""
    forced = os.environ.get("KITLIB_PRECISION", "").strip().lower()
    if forced:
        if forced not in POLICIES:
            raise ValueError(f"KITLIB_PRECISION={forced!r} is not a Keras precision policy the kit supports: "
                             f"choose one of {', '.join(POLICIES)}, or unset it to use the profile's.")
        return forced, "set by KITLIB_PRECISION"
    policy = precision_policy(profile, device)
    if profile != "gpu":
        return policy, f"the {profile} profile computes in float32"
    if policy == "float32":
        return policy, "the gpu profile without an accelerator computes in float32"
    return policy, f"the gpu profile's policy on {'a TPU' if policy == 'mixed_bfloat16' else 'a GPU'}"


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None; read from its metadata, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def declared_minima() -> dict[str, str]:
    """The floors kitlib declares ({distribution: version}, from `name>=version`), read from its installed metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        declared = requires("kitlib") or []
    except PackageNotFoundError:
        return {}
    found = {}
    for requirement in declared:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\w.]+)", requirement.strip())
        if match:  # extras (";" markers) and exact pins are not floors
            found[match.group(1).lower()] = match.group(2)
    return found


def _older(version: str, floor: str) -> bool:
    """True when `version` is an older release than `floor`."""
    from packaging.version import Version

    return Version(version) < Version(floor)


# What pip must never replace under a running Colab kernel: TensorFlow and Keras (a swapped TensorFlow needs a
# restart and may not match Colab's CUDA libraries), and the packages built against CUDA or numpy's ABI.
KEPT = frozenset({"tensorflow", "tensorflow-cpu", "tf-keras", "keras", "tensorboard", "tensorflow-io-gcs-filesystem",
                  "numpy", "ml-dtypes", "protobuf", "jax", "jaxlib", "torch", "torchvision", "torchaudio"})
KEPT_PREFIXES = ("nvidia-", "jax-cuda", "tensorrt")
# {installed package: the one it follows}: asked for with it, so pip moves both to releases that match (keras-nlp
# pins keras-hub exactly; left behind, pip reports a broken keras-nlp).
FOLLOWERS = {"keras-nlp": "keras-hub"}


def colab_constraints(installed: dict[str, str | None]) -> list[str]:
    """`name==version` for every installed package pip must keep (`KEPT`, `KEPT_PREFIXES`), for pip's --constraint."""
    return sorted(f"{name}=={version}" for name, version in installed.items()
                  if version and (name in KEPT or name.startswith(KEPT_PREFIXES)))


class ColabStackError(RuntimeError):
    """Colab's TensorFlow cannot run the kit without being replaced."""


def colab_requirements(installed: dict[str, str | None], minima: dict[str, str] | None = None) -> list[str]:
    """What pip must add around Colab's TensorFlow (which `colab_constraints` keeps); empty when nothing is missing.

    tensorflow-text ships native ops built for one TensorFlow minor version, so it must match TensorFlow's
    major.minor ("Op type not registered" otherwise); every other declared package that is missing or older than
    its floor (`declared_minima`) is asked for at its floor or newer, so pip picks the newest release that fits the
    kept TensorFlow and Keras; keras-nlp, when there, follows keras-hub. A TensorFlow below its floor raises
    `ColabStackError`: replacing it is never an option.
    """
    tensorflow = installed.get("tensorflow")
    if tensorflow is None:
        return []  # not a TensorFlow runtime: nothing to match
    minima = declared_minima() if minima is None else minima
    if "tensorflow" in minima and _older(tensorflow, minima["tensorflow"]):
        raise ColabStackError(
            f"This Colab runtime's TensorFlow {tensorflow} is older than the {minima['tensorflow']} the kit needs, and "
            "the kit will not replace it under a running kernel: choose a newer runtime (Runtime > Change runtime "
            "type > Runtime version), or run the lessons locally with `make lab`.")
    minor = ".".join(tensorflow.split(".")[:2])
    wanted = []
    text = installed.get("tensorflow-text")
    if text is None or ".".join(text.split(".")[:2]) != minor:
        wanted.append(f"tensorflow-text=={minor}.*")
    for name, floor in minima.items():
        if name != "tensorflow" and (installed.get(name) is None or _older(installed[name], floor)):
            wanted.append(f"{name}>={floor}")
    lifted = {want.split(">=")[0] for want in wanted}
    return wanted + [name for name, leader in FOLLOWERS.items() if installed.get(name) and leader in lifted]


def installed_distributions() -> dict[str, str]:
    """{normalised name: version} of every installed distribution, as `pip list` shows them (the first on the path)."""
    from importlib.metadata import distributions

    found: dict[str, str] = {}
    for dist in distributions():
        if dist.metadata["Name"]:
            found.setdefault(re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower(), dist.version)
    return found


def complete_colab_stack() -> None:
    """On Colab, pip-install what the kit needs around its TensorFlow, Keras and CUDA packages, kept by constraints."""
    import subprocess
    import tempfile

    installed = installed_distributions()
    wanted = colab_requirements(installed)
    if not wanted:
        return
    print(f"Colab: installing {' '.join(wanted)} around its TensorFlow {installed['tensorflow']} and Keras "
          f"{installed.get('keras', '-')}, which stay as they are (once per runtime).")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="colab-kept-") as kept:
        kept.write("\n".join(colab_constraints(installed)) + "\n")
        kept.flush()
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--constraint", kept.name, *wanted])
    if done.returncode != 0:
        raise ColabStackError(
            f"pip found no releases of {' '.join(wanted)} that work with this runtime's TensorFlow "
            f"{installed['tensorflow']} and Keras {installed.get('keras', '-')} (its message is above); the kit "
            "kept them rather than replace them: choose a newer runtime (Runtime > Change runtime type).")


def setup(profile: str | None = None, seed: int = 42, verbose: bool = True) -> Config:
    """Pick the profile, seed everything, find devices and strategy, and report what was chosen."""
    if in_colab():
        complete_colab_stack()
    # Native TF logs go to the kernel's stderr and read like failures to learners; Python errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_native_stderr():
        import keras
        import tensorflow as tf

        device, strategy = _accelerators(replicas_requested())

    tf.get_logger().setLevel("ERROR")  # "INFO:tensorflow:Assets written to ..." on every export reads like an error
    # Keras 3.15 warns on every fit() with a tf.data input; kitlib's pipelines shuffle themselves.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed, but will be ignored")
    has_accelerator = not device.startswith("CPU")
    name = resolve_profile(profile, has_accelerator)
    seed_everything(seed)
    policy, reason = resolve_precision(name, device)
    keras.mixed_precision.set_global_policy(policy)
    sizes = dict(_SIZES[name], batch_size=_SIZES[name]["batch_size"] * strategy.num_replicas_in_sync)
    cfg = Config(
        profile=name,
        seed=seed,
        device=device,
        strategy=strategy,
        mixed_precision=policy != "float32",
        precision=policy,
        precision_reason=reason,
        offline=env_flag("KITLIB_OFFLINE"),
        cache_dir=cache_dir(),
        data_dir=data_dir(),
        results_dir=results_dir(),
        fit_verbose="auto" if progress.enabled(name) else 2,
        **sizes,
    )
    progress.announce_long_cells(name)
    if verbose:
        print(describe(cfg))
        if in_colab() and not has_accelerator:
            print("No GPU found: in Colab choose Runtime > Change runtime type > GPU, then rerun.")
    return cfg


def describe(cfg: Config) -> str:
    """A short report of the profile, device, data locations and library versions."""
    strategy = type(cfg.strategy).__name__
    strategy = "default" if strategy.startswith("_") else strategy  # TF's default strategy has a private class name
    lines = [
        f"profile: {cfg.profile}   device: {cfg.device}   "
        f"strategy: {strategy} ({cfg.replicas} replica(s), global batch {cfg.batch_size})   "
        f"seed: {cfg.seed}",
        f"precision: {cfg.precision} ({cfg.precision_reason})",
        f"data: cache {cfg.cache_dir}   data dir {cfg.data_dir or '-'}   "
        f"network {'off (KITLIB_OFFLINE=1)' if cfg.offline else 'allowed'}",
        "versions: " + "  ".join(f"{k} {v}" for k, v in versions().items()),
    ]
    return "\n".join(lines)
