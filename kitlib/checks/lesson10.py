"""Lesson 10 (scaling out): the linear scaling rule, a worker's TF_CONFIG."""

from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np

from kitlib.checks.core import CheckFailed, call, call_on_copies, exercise, expect, expect_unseen, passed, unseen_rng


_RULE_SECTION = "'What changes in your code' in lesson 10"
_CONFIG_SECTION = "Exercise 2 in lesson 10"


def _rate_hint(got: object, base_lr: float, base_batch: int, global_batch: int) -> str:
    """Name the mistake a wrong rate matches, or point to the lesson."""
    if not isinstance(got, (int, float, np.number)):
        return "Return a number."
    want = base_lr * global_batch / base_batch
    mistakes = {base_lr * base_batch / global_batch: "The ratio is upside down: a bigger batch gets a bigger rate.",
                base_lr * np.sqrt(global_batch / base_batch): "That is the square-root rule; this exercise asks for "
                "the linear one.",
                base_lr * (global_batch // base_batch): "// is integer division: it drops the fraction of the "
                "ratio (48 // 32 is 1).",
                global_batch / base_batch: "That is the ratio alone: it scales the rate that worked, base_lr."}
    return next((hint for value, hint in mistakes.items() if np.isclose(got, value, rtol=1e-6)
                 and not np.isclose(value, want, rtol=1e-6)), f"The rate grows in proportion to the batch: see "
                f"{_RULE_SECTION}.")


@exercise("return base_lr * global_batch / base_batch", "scale_learning_rate")
def learning_rate_scaling(fn: Callable[[float, int, int], float]) -> None:
    """Check `fn(base_lr, base_batch, global_batch)` applies the linear scaling rule."""
    cases = [((1e-3, 32, 256), "Eight times the batch gets eight times the learning rate."),
             ((2e-5, 32, 16), "Half the batch, half the learning rate: the rule works both ways."),
             ((3e-3, 32, 48), "1.5 times the batch, 1.5 times the learning rate.")]
    for (base_lr, base_batch, global_batch), why in cases:
        got = call(fn, base_lr, base_batch, global_batch)
        want = base_lr * global_batch / base_batch
        expect(isinstance(got, (int, float, np.number)) and np.isclose(got, want, rtol=1e-6),
               f"{why} (base_lr={base_lr}, base_batch={base_batch}, global_batch={global_batch})", want, got,
               _rate_hint(got, base_lr, base_batch, global_batch))
    rng = unseen_rng("learning_rate_scaling")
    for _ in range(4):
        base_lr, base_batch = float(10 ** rng.uniform(-5, -2)), int(rng.choice([8, 16, 24, 64, 100]))
        global_batch = int(rng.integers(1, 1024))
        got = call_on_copies(fn, base_lr, base_batch, global_batch, shown=False)
        ok = isinstance(got, (int, float, np.number)) and np.isclose(got, base_lr * global_batch / base_batch,
                                                                     rtol=1e-6)
        expect_unseen(ok, "another base rate, base batch and global batch: the rate does not follow the linear "
                      "rule.", _rate_hint(got, base_lr, base_batch, global_batch))
    passed("the learning rate follows the global batch size.")


def _as_tensorflow_reads_it(config: dict) -> tuple[dict, str, int]:
    """(cluster, task type, task index) as TensorFlow's TFConfigClusterResolver reads json.dumps(config)."""
    import tensorflow as tf

    before = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = json.dumps(config)
    try:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id
    except Exception as exc:
        raise CheckFailed(f"TensorFlow cannot read this TF_CONFIG: {type(exc).__name__}: {exc}\n"
                          f"  hint: the prompt of {_CONFIG_SECTION} gives the two keys and what each holds.") from exc
    finally:
        if before is None:
            del os.environ["TF_CONFIG"]
        else:
            os.environ["TF_CONFIG"] = before


def _config(addresses: list[str], index: int) -> dict:
    """The reference TF_CONFIG of worker `index`."""
    return {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}


@exercise("""
    return {"cluster": {"worker": list(worker_addresses)}, "task": {"type": "worker", "index": index}}
    """, "tf_config_for")
def cluster_config(fn: Callable[[list[str], int], dict]) -> None:
    """Check `fn(worker_addresses, index)` builds the TF_CONFIG that worker `index` needs, as TensorFlow reads it."""
    addresses = ["machine-c:2222", "machine-a:2222", "machine-b:2222"]  # not sorted: the order given is the order
    for index in (0, 2):
        got = call_on_copies(fn, addresses, index)
        expected = _config(addresses, index)
        expect(isinstance(got, dict) and {"cluster", "task"} <= set(got), "TF_CONFIG is a dict with the keys "
               "'cluster' and 'task' (serialised with json.dumps into the environment).", expected,
               got if not isinstance(got, dict) else sorted(got), f"See the prompt of {_CONFIG_SECTION}.")
        try:
            json.dumps(got)
        except (TypeError, ValueError) as exc:
            raise CheckFailed(f"TF_CONFIG must be JSON-serialisable.\n  error: {exc}\n"
                              "  hint: use only dicts, lists, str and int.") from None
        cluster = got["cluster"]
        workers = cluster.get("worker") if isinstance(cluster, dict) else None
        hint = ("Keep the addresses in the order given: task index i means worker_addresses[i] on every machine, "
                "so do not sort them." if workers is not None and sorted(workers) == sorted(addresses) else
                "The cluster lists every worker's address under the job's name, 'worker'.")
        expect(cluster == expected["cluster"], "Every worker lists the whole cluster, in the same order.",
               expected["cluster"], cluster, hint)
        task = got["task"]
        kind = task.get("type") if isinstance(task, dict) else None
        hint = ("This cluster has only 'worker' jobs, so worker 0 is a 'worker' too (it acts as chief by being "
                "index 0); with 'chief' TensorFlow fails with \"No such job in cluster: 'chief'\"."
                if kind == "chief" else "The task names this process's job and its position in that job's list.")
        expect(task == expected["task"], f"The task says which worker this process is (index {index}).",
               expected["task"], task, hint)
        read = _as_tensorflow_reads_it(got)
        expect(read == (expected["cluster"], "worker", index), "TensorFlow's TFConfigClusterResolver reads the "
               "same cluster and task.", (expected["cluster"], "worker", index), read,
               f"See the prompt of {_CONFIG_SECTION}.")
    rng = unseen_rng("cluster_config")
    for count in (5, 2):
        addresses = [f"host-{int(i)}:{int(rng.integers(2000, 9000))}" for i in rng.permutation(count)]
        index = int(rng.integers(0, count))
        got = call_on_copies(fn, addresses, index, shown=False)
        expect_unseen(got == _config(addresses, index), "another cluster size, other addresses and another index: "
                      "the TF_CONFIG is not right.", "Use the addresses and the index you are given, however many.")
    passed("the same cluster everywhere, a different task index per machine, as TensorFlow reads it.")
