"""Checkpoints of a training run, one per finished epoch, so a run can resume where it stopped.

Each checkpoint is a folder `epoch-<k>` with the model (`model.pdparams`), the optimizer and schedule
(`optimizer.pdopt`), the best weights so far (`best.pdparams`, a hard link when unchanged) and
`checkpoint.json`: the loop's state (epoch history, best epoch, early-stopping counter, the random seeds
of the next epoch, the fp16 loss scaler's scale and counters) and the sha256 of every file, signed with a key
only the studio knows. It is written in a hidden folder and renamed into place, so a crash never leaves half
a checkpoint, and a checkpoint is loaded only when its signature and every file's digest match: `paddle.load`
unpickles, and nothing the studio did not write is ever unpickled.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import paddle

from engine.digest import file_digest
from engine.messages import N_, Message

FORMAT = 1
MANIFEST = "checkpoint.json"
BEST_ONLY = "best.pdparams"  # what stays after a successful run: the weights a new run can start from
BEST_MANIFEST = "best.json"


class CheckpointRejected(Exception):
    """A checkpoint that is missing pieces, was changed, or was not written by this studio."""

    @property
    def message(self) -> Message:
        """The reason, as an English Message the web app can translate."""
        reason = self.args[0] if self.args else ""
        return reason if isinstance(reason, Message) else Message(str(reason))


@dataclass
class LoopState:
    """Where the epoch loop stands after `epoch` finished epochs."""

    epoch: int
    best_epoch: int
    best_val_acc: float
    best_loss: float
    waited: int
    history: list[dict]
    # the fp16 loss scaler's state (engine.amp.scaler_state); None without a scaler, and in checkpoints
    # written before it was kept
    scaler: dict | None = None


@dataclass
class Checkpoint:
    folder: Path
    state: LoopState

    def load_into(self, model, optimizer) -> dict:
        """Restore model and optimizer (with its schedule); returns the best weights as numpy arrays."""
        model.set_state_dict(paddle.load(str(self.folder / "model.pdparams")))
        by_structured = {key: parameter.name for key, parameter in model.named_parameters()}
        optimizer.set_state_dict(_rename(paddle.load(str(self.folder / "optimizer.pdopt")), by_structured, "|"))
        return paddle.load(str(self.folder / "best.pdparams"), return_numpy=True)


def _rename(state: dict, names: dict[str, str], separator: str) -> dict:
    """Optimizer state keyed by the parameters' structured names, and back: `linear_3.w_0_moment1_0`
    (separator "_") <-> `fc.weight|_moment1_0` (separator "|").

    Paddle names a parameter's accumulators after its unique name, which depends on how many layers the
    process built before; the structured name does not, so a checkpoint loads in any process.
    """
    ordered = sorted(names, key=len, reverse=True)
    renamed = {}
    for key, value in state.items():
        if key == "master_weights" and isinstance(value, dict):
            renamed[key] = {names.get(name, name): weights for name, weights in value.items()}
            continue
        name = next((name for name in ordered if key.startswith(name + separator)), None)
        if name is None:
            renamed[key] = value  # LR_Scheduler and other entries that belong to no parameter
        elif separator == "_":
            renamed[f"{names[name]}|{key[len(name):]}"] = value
        else:
            renamed[f"{names[name]}{key[len(name) + 1:]}"] = value
    return renamed


def _sign(key: bytes, manifest: dict) -> str:
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


class CheckpointStore:
    """The checkpoints of one run under `root`; only the newest is kept."""

    def __init__(self, root: Path | str, key: bytes) -> None:
        self.root, self.key = Path(root), key

    def _folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and p.name.startswith("epoch-")
                 and p.name[6:].isdigit()]
        return sorted(found, key=lambda p: int(p.name[6:]))

    def save(self, state: LoopState, model, optimizer, best_weights: dict, best_changed: bool) -> Path:
        """Write the checkpoint of `state.epoch` beside the last one, rename it into place, drop the last."""
        self.root.mkdir(parents=True, exist_ok=True)
        previous = self._folders()
        partial = self.root / f".partial-{uuid.uuid4().hex}"
        partial.mkdir()
        try:
            paddle.save(model.state_dict(), str(partial / "model.pdparams"))
            by_name = {parameter.name: key for key, parameter in model.named_parameters()}
            paddle.save(_rename(optimizer.state_dict(), by_name, "_"), str(partial / "optimizer.pdopt"))
            old_best = previous[-1] / "best.pdparams" if previous else None
            if not best_changed and old_best is not None and old_best.is_file():
                os.link(old_best, partial / "best.pdparams")
            elif best_changed:
                os.link(partial / "model.pdparams", partial / "best.pdparams")
            else:
                paddle.save(best_weights, str(partial / "best.pdparams"))
            files = {name: file_digest(partial / name) for name in ("model.pdparams", "optimizer.pdopt", "best.pdparams")}
            manifest = {"format": FORMAT, "state": vars(state), "files": files}
            body = json.dumps({"manifest": manifest, "signature": _sign(self.key, manifest)}, ensure_ascii=False)
            (partial / MANIFEST).write_text(body, encoding="utf-8")
            target = self.root / f"epoch-{state.epoch}"
            if target.exists():
                shutil.rmtree(target)
            os.rename(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        for folder in previous:
            if folder != target:
                shutil.rmtree(folder, ignore_errors=True)
        return target

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint, checked; None when there is none. Raises CheckpointRejected."""
        folders = self._folders()
        return self.verify(folders[-1]) if folders else None

    def verify(self, folder: Path) -> Checkpoint:
        try:
            body = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            manifest, signature = body["manifest"], body["signature"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckpointRejected(Message(N_("the checkpoint of %(folder)s has no readable manifest"),
                                             {"folder": folder.name})) from None
        if not isinstance(signature, str) or not hmac.compare_digest(signature, _sign(self.key, manifest)):
            raise CheckpointRejected(Message(N_("the checkpoint of %(folder)s is not signed by this studio"),
                                             {"folder": folder.name}))
        if manifest.get("format") != FORMAT:
            raise CheckpointRejected(Message(N_("the checkpoint of %(folder)s has an unknown format"),
                                             {"folder": folder.name}))
        for name, digest in manifest["files"].items():
            path = folder / name
            if not path.is_file() or file_digest(path) != digest:
                raise CheckpointRejected(Message(N_("%(file)s of the checkpoint of %(folder)s is missing or changed"),
                                                 {"file": name, "folder": folder.name}))
        return Checkpoint(folder, LoopState(**manifest["state"]))

    def keep_best_only(self) -> Path | None:
        """After a successful run: keep the best weights of the newest checkpoint (signed, so a later run
        can start from them), drop the rest."""
        folders = self._folders()
        best = None
        if folders and (folders[-1] / "best.pdparams").is_file():
            best = self.root / BEST_ONLY
            os.replace(folders[-1] / "best.pdparams", best)
            manifest = {"format": FORMAT, "files": {BEST_ONLY: file_digest(best)}}
            body = json.dumps({"manifest": manifest, "signature": _sign(self.key, manifest)})
            partial = self.root / f".{BEST_MANIFEST}.partial"
            partial.write_text(body, encoding="utf-8")
            os.replace(partial, self.root / BEST_MANIFEST)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        for leftover in self.root.glob(".partial-*") if self.root.is_dir() else []:
            shutil.rmtree(leftover, ignore_errors=True)
        return best

    def best_weights(self) -> Path:
        """The kept best weights of a finished run, checked; raises CheckpointRejected."""
        try:
            body = json.loads((self.root / BEST_MANIFEST).read_text(encoding="utf-8"))
            manifest, signature = body["manifest"], body["signature"]
        except (OSError, ValueError, KeyError, TypeError):
            raise CheckpointRejected(Message(N_("its weights were not kept (it was trained before they were)"))) \
                from None
        if not isinstance(signature, str) or not hmac.compare_digest(signature, _sign(self.key, manifest)):
            raise CheckpointRejected(Message(N_("its kept weights are not signed by this studio")))
        path = self.root / BEST_ONLY
        if not path.is_file() or file_digest(path) != manifest["files"].get(BEST_ONLY):
            raise CheckpointRejected(Message(N_("its kept weights are missing or changed")))
        return path

    def size_bytes(self) -> int:
        """Disk use, counting hard-linked files once."""
        if not self.root.is_dir():
            return 0
        seen, total = set(), 0
        for path in self.root.rglob("*"):
            if path.is_file():
                info = path.stat()
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
        return total

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
