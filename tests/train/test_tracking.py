"""`--report-to`'s core: flag parsing, the missing-extra error, metric names, and the guard around backends."""

from __future__ import annotations

import pytest

import katcli.train.tracking as T
from katcli.errors import ConfigError, KatError
from katcli.train.tracker_backends import wandb_mode


def test_report_to_takes_repeats_and_commas_in_order_and_none_is_off():
    assert T.parse_report_to(None) == ()
    assert T.parse_report_to(["none"]) == ()
    assert T.parse_report_to(["tensorboard,wandb", "mlflow", "wandb"]) == ("tensorboard", "wandb", "mlflow")
    assert T.parse_report_to("Trackio, mlflow") == ("trackio", "mlflow")
    with pytest.raises(ConfigError, match=r"^--report-to comet: not a tracker \(choose from none, tensorboard, "
                                          r"wandb, trackio, mlflow\)$"):
        T.parse_report_to(["tensorboard,comet"])
    with pytest.raises(ConfigError, match="cannot be combined"):
        T.parse_report_to(["none", "wandb"])


def test_a_missing_extra_is_an_error_naming_it(monkeypatch):
    real = T.importlib.util.find_spec
    monkeypatch.setattr(T.importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(KatError) as err:
        T.check_installed(["mlflow"])
    assert err.value.message == "--report-to mlflow needs the mlflow-skinny package, which is not installed"
    assert err.value.hint == "pip install 'katcli[mlflow]' (or 'katcli[trackers]' for all four), or drop " \
        "--report-to mlflow"


def test_training_lines_get_trl_names_under_train():
    rm = {"step": 3, "lr": 0.001, "loss": 0.5, "bt_loss": 0.49, "accuracy": 0.75, "margin": 0.1, "reward_mean": 0.2,
          "reward_std": None, "pairs": 8, "grad_norm": 1.5, "tokens": 120, "pad_tokens": 8, "pad_fraction": 0.0625}
    assert T.step_metrics(rm) == {
        "train/learning_rate": 0.001, "train/loss": 0.5, "train/bt_loss": 0.49, "train/accuracy": 0.75,
        "train/margin": 0.1, "train/mean_reward": 0.2, "train/pairs": 8.0, "train/grad_norm": 1.5,
        "train/tokens": 120.0, "train/pad_tokens": 8.0, "train/pad_fraction": 0.0625,
    }  # reward_std is null (NaN): left out, never logged as 0
    dpo = T.step_metrics({"step": 1, "rewards/accuracies": 1.0, "rewards/margins": 0.3, "nll": 2.0})
    assert dpo == {"train/rewards/accuracies": 1.0, "train/rewards/margins": 0.3, "train/nll_loss": 2.0}
    grpo = T.step_metrics({"step": 1, "kl": 0.01, "reward": 0.4, "completions/mean_length": 12.5, "type": "x"})
    assert grpo == {"train/kl": 0.01, "train/reward": 0.4, "train/completions/mean_length": 12.5}


def test_evaluations_name_quintiles_sources_and_intervals():
    acc = {"n": 10, "correct": 7, "accuracy": 0.7, "ci95": [0.4, 0.89]}
    report = {"overall": acc, "by_source": {"hh": acc}, "by_quintile": [acc] * 5,
              "quintile_weight_ranges": [[0, 1]] * 5, "mean_loss": 0.6, "mean_margin": 0.2, "ties": 0}
    got = T.eval_metrics(report)
    assert got["eval/accuracy"] == 0.7 and got["eval/accuracy_ci95_low"] == 0.4
    assert got["eval/accuracy_ci95_high"] == 0.89 and got["eval/loss"] == 0.6 and got["eval/margin"] == 0.2
    assert got["eval/source/hh/accuracy"] == 0.7
    assert {k.split("/")[1] for k in got if k.count("/") == 2 and not k.startswith("eval/source")} == {
        "q1_commonest", "q2", "q3", "q4", "q5_rarest"}
    assert not any(k.endswith(("/n", "/correct", "ties")) for k in got)
    nll = T.eval_metrics({"overall": {"n": 4, "tokens": 40, "nll": 2.5, "perplexity": 12.18}, "by_source": {},
                          "by_quintile": None})
    assert nll == {"eval/loss": 2.5, "eval/perplexity": 12.18}


class Recorder:
    def __init__(self, name: str, held: int = 0, fail_on: str | None = None) -> None:
        self.name, self.held, self.fail_on = name, held, fail_on
        self.logged: list[tuple[int, dict]] = []
        self.finished: list[bool] = []
        self.notes = [f"{name} says hi"]

    def _maybe_fail(self, what: str) -> None:
        if self.fail_on in (what, "everything"):
            raise OSError(f"disk full in {what}")

    def start(self, run):
        self._maybe_fail("start")
        return self.held

    def log(self, metrics, step):
        self._maybe_fail("log")
        self.logged.append((step, dict(metrics)))

    def finish(self, summary, *, ok):
        self._maybe_fail("finish")
        self.finished.append(ok)

    def where(self):
        self._maybe_fail("where")
        return f"/x/{self.name}"


def _trackers(*backends):
    warnings, notes = [], []
    run = T.TrackedRun(name="rm/u", group="rm/uniform", tags=("uniform", "rm"), project="p", root=None)
    return T.Trackers(list(backends), run, warn=warnings.append, note=notes.append), warnings, notes


def test_a_failing_backend_warns_once_and_the_others_go_on():
    good, bad = Recorder("tensorboard"), Recorder("wandb", fail_on="log")
    tr, warnings, notes = _trackers(bad, good)
    tr.start()
    for step in (1, 2, 3):
        tr.log_step({"step": step, "loss": 1.0 / step})
    tr.finish({"summary/step": 3.0}, ok=True)
    assert [s for s, _ in good.logged] == [1, 2, 3] and good.finished == [True]
    assert bad.logged == [] and bad.finished == []
    assert warnings == ["wandb logging failed (step 1: OSError: disk full in log); it is off for the rest of this "
                        "run, training goes on and kat's own files are unaffected"]
    assert notes == ["wandb says hi", "tensorboard says hi"]
    assert tr.where() == [("tensorboard", "/x/tensorboard")] and tr.failed == ["wandb"]


def test_a_backend_raising_on_every_call_is_one_warning():
    tr, warnings, _ = _trackers(Recorder("mlflow", fail_on="everything"))
    tr.start()
    tr.log_step({"step": 1, "loss": 1.0})
    tr.log_eval(1, {"overall": {"accuracy": 1.0}})
    tr.finish({}, ok=True)
    assert tr.where() == [] and len(warnings) == 1 and warnings[0].startswith("mlflow logging failed (start: ")


def test_resume_sends_only_the_steps_a_tracked_run_lacks():
    history = [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.8}, {"step": 2, "type": "eval",
                                                                    "overall": {"accuracy": 0.5}}]
    fresh, held = Recorder("tensorboard", held=0), Recorder("wandb", held=2)
    tr, _, _ = _trackers(fresh, held)
    tr.start(history=history)  # a tracker added at --resume gets the run so far from metrics.jsonl
    tr.log_step({"step": 2, "loss": 0.8})  # already held by the second: not sent twice
    tr.log_step({"step": 3, "loss": 0.7})
    assert [(s, sorted(m)) for s, m in fresh.logged] == [
        (1, ["train/loss"]), (2, ["train/loss"]), (2, ["eval/accuracy"]), (2, ["train/loss"]), (3, ["train/loss"])]
    assert [s for s, _ in held.logged] == [3]


def test_wandb_follows_wandb_mode_and_goes_offline_without_network_or_key():
    assert wandb_mode({"WANDB_MODE": "disabled"}, reachable=lambda h: 1 / 0) == ("disabled", None)
    mode, note = wandb_mode({}, reachable=lambda host: False)
    assert mode == "offline" and note.startswith("W&B logs offline: api.wandb.ai is unreachable; upload later with")
    mode, note = wandb_mode({"WANDB_BASE_URL": "https://wandb.example.org", "HOME": "/nonexistent"},
                            reachable=lambda host: host == "wandb.example.org")
    assert mode == "offline" and "no W&B API key is configured" in note
    assert wandb_mode({"WANDB_API_KEY": "k"}, reachable=lambda host: True) == ("online", None)


# One real metrics.jsonl line of each objective (kat quickstart, tiny), and a GRPO evaluation line.
GRPO_LINE = {"step": 1, "lr": 0.001, "reward": 0.0207, "reward_std": 0.00016, "frac_reward_zero_std": 0.0,
             "reward/q1_mean": 0.0208, "reward/q1_std": 0.00015, "reward/q2_mean": None, "reward/q2_std": None,
             "reward/q5_mean": 0.0204, "reward/q5_std": 0.00024, "completions/mean_length": 24.0,
             "completions/max_length": 24, "completions/clipped_ratio": 1.0, "prompts": 8, "loss": -6.7e-07,
             "kl": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.0,
             "entropy": 7.62, "replies": 32, "grad_norm": 0.15, "tokens": 1472, "pad_tokens": 0, "pad_fraction": 0.0}
DPO_LINE = {"step": 1, "lr": 0.001, "loss": 0.69, "rewards/chosen": 4.8e-08, "rewards/rejected": 4.8e-08,
            "rewards/accuracies": 0.06, "rewards/margins": 0.0, "logps/chosen": -65.4, "logps/rejected": -62.9,
            "nll": 7.27, "pairs": 16, "grad_norm": 0.59, "tokens": 738, "pad_tokens": 30, "pad_fraction": 0.039}
SFT_LINE = {"step": 1, "lr": 0.002, "loss": 7.62, "perplexity": 2048.0, "replies": 16, "reply_tokens": 148,
            "grad_norm": 1.59, "tokens": 375, "pad_tokens": 9, "pad_fraction": 0.023}
GROUP = {"n": 4, "greedy_reward": 0.0194, "sampled_reward": 0.0204, "greedy_length": 24.0, "sampled_length": 23.3}
GRPO_EVAL = {"overall": GROUP, "by_source": {"hh-rlhf": GROUP}, "by_quintile": [GROUP] * 5,
             "quintile_weight_ranges": [[0, 1]] * 5}


def test_no_tracker_name_is_both_a_metric_and_a_folder():
    # MLflow's file store keeps a metric as a file named by its path: `train/reward` beside `train/reward/q1_mean`
    # is "Not a directory" (found by `kat quickstart --report-to mlflow`).
    grpo = T.step_metrics(GRPO_LINE)
    assert grpo["train/reward"] == 0.0207 and grpo["train/q1_commonest/reward"] == 0.0208
    assert grpo["train/q5_rarest/reward_std"] == 0.00024 and "train/q2/reward" not in grpo  # null: not logged
    for names in (grpo, T.step_metrics(DPO_LINE), T.step_metrics(SFT_LINE), T.eval_metrics(GRPO_EVAL),
                  T.summary_metrics(step=3, tokens_per_s=1.0, pad_fraction=0.0, train_seconds=1.0, report=GRPO_EVAL)):
        folders = {name.rsplit("/", 1)[0] for name in names}
        assert not folders & set(names), folders & set(names)
