"""The LightningModule: the name encoder's head learns, the CLIP towers stay frozen, MSE on (N, D) names.

Validation runs on held-out photos of train identities and on photos of unseen identities: MSE, cosine, and top-1 /
top-5 retrieval of the right name among all identities' names (faiss inner product on normalised names, the index
built once and sharded over the DDP ranks: ``retrieval``), and the spread ratio δ that calibrates name guidance
(eq. 4, see ``on_validation_epoch_end``).

Memory per rank: the (M, N, D) targets in the precision they are stored in (on the training device: any photo's
target may be needed), 1/W of the retrieval index (float32, on the CPU) and the head.
"""

from __future__ import annotations

import math
import warnings

import lightning as L
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from namespace import NameEncoder, NameEncoderConfig

from .export import RECORD_KEY, training_record
from .retrieval import ShardedNameIndex

VAL_SPLITS = ("heldout", "unseen")
# the frozen towers (streaming images) are in eval mode on purpose: no dropout, fixed norm statistics
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
# Lightning's own use of a torch API that recent torch deprecates: nothing a user of this trainer can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


class NameEncoderModule(L.LightningModule):
    """Trains a ``NameEncoder`` head.

    Args:
        encoder: the encoder architecture (``configs/encoder/*.yaml``).
        learning_rate: AdamW peak learning rate.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        warmup_steps: linear warm-up steps from 0 to the peak.
        min_lr_ratio: the cosine decay ends at ``learning_rate · min_lr_ratio`` on the last step.
    """

    def __init__(
        self,
        encoder: NameEncoderConfig,
        learning_rate: float = 1e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.0,
    ) -> None:
        super().__init__()
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters(
            {
                "encoder": encoder.to_dict(),
                "learning_rate": learning_rate,
                "weight_decay": weight_decay,
                "betas": list(betas),
                "warmup_steps": warmup_steps,
                "min_lr_ratio": min_lr_ratio,
            }
        )
        # the cached-features path needs the head only; the towers made the features once, in the data pipeline
        self.encoder = NameEncoder(encoder, load_towers=False)
        # (M, N, D) targets, set in setup: data, not model state. A plain tensor, not a buffer, so that DDP does not
        # broadcast all M names on every step (its buffers are, with broadcast_buffers=True, DDP's default). Kept in
        # the dtype they are stored in; the rows of a batch are converted to float32.
        self.names = torch.zeros(0)
        self._index: ShardedNameIndex | None = None  # this rank's shard of the names, built at the first validation
        self._sums: dict[str, torch.Tensor] = {}

    def setup(self, stage: str) -> None:
        """Reads the data through the datamodule, checks it against the encoder, stores the name statistics; builds
        the frozen towers when the datamodule streams images instead of cached features."""
        config = self.encoder.config
        datamodule = self.trainer.datamodule
        data = datamodule.load(config.num_tokens, config.width, config.feature_dim, config.reference_crop)
        self.names = data.names.to(self.device)  # Lightning has set self.device to the strategy's device by now
        self._index = None  # new names: the next validation indexes them
        self.encoder.set_statistics(data.statistics)
        if getattr(datamodule, "provides", "features") == "images":
            self.encoder.attach_towers()
        # Every buffer is the same on every rank by construction (statistics of the same data, δ from sums over all
        # ranks, frozen towers): no DDP strategy, whatever its broadcast_buffers, may resend them on every forward.
        buffers = [name for name, _ in self.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(self, buffers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features)

    def _predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """A batch of cached features (B, F) or of uint8 images (B, 3, S, S) → (B, N, D) predicted names."""
        if "images" in batch:
            features = self.encoder.pixel_features(batch["images"].float() / 255)  # frozen towers, no gradient
        else:
            features = batch["features"]
        return self.encoder(features)

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        predicted = self._predict(batch).float()
        errors = (predicted - self.names[batch["name_row"]].float()).square().mean(dim=(1, 2))  # (B,)
        weight = batch["weight"]  # 0 for padding (a rank with fewer photos than the busiest one)
        count = weight.sum()
        loss = (errors * weight).sum() / count.clamp(min=1)
        if count > 0:
            self.log("train/loss", loss, prog_bar=True, batch_size=int(count))
        skipped = batch["skipped"].float()
        self.log("train/skipped_samples", skipped, reduce_fx="sum", on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        if self._index is None:  # once: the names do not change during training
            self._index = ShardedNameIndex(self.names, self.global_rank, self.trainer.world_size)
        self._sums = {split: torch.zeros(7, dtype=torch.float64) for split in VAL_SPLITS}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int, dataloader_idx: int = 0) -> None:
        keep = batch["weight"] > 0
        predicted = self._predict(batch).float()[keep].flatten(1)  # (B, N·D)
        # a collective under DDP: every rank searches, also with a batch of padding only (B = 0)
        found = self._index.search(predicted, 5)  # (B, 5) name rows
        if not keep.any():
            return
        rows = batch["name_row"][keep]
        targets = self.names[rows].flatten(1).float()
        mean = self.encoder.name_mean.flatten()  # F_mean (N·D,), float32 whatever the head's precision
        hits = found == rows.cpu()[:, None]
        self._sums[VAL_SPLITS[dataloader_idx]] += torch.stack(
            [
                torch.tensor(float(len(rows))),
                (predicted - targets).square().mean(dim=1).sum().cpu(),
                nn.functional.cosine_similarity(predicted, targets, dim=1).sum().cpu(),
                hits[:, 0].sum().float(),
                hits.any(dim=1).sum().float(),
                (targets - mean).square().sum().cpu(),  # the targets' spread around F_mean
                (predicted - mean).square().sum().cpu(),  # the predictions' spread around F_mean
            ]
        ).double()

    def on_validation_epoch_end(self) -> None:
        """Logs each split's metrics, and calibrates the encoder's default name guidance δ (eq. 4).

        An encoder trained with MSE shrinks its predictions towards F_mean (towards the average name where it is
        unsure); eq. 4 undoes that with δ > 1. We calibrate δ = sqrt(Σ‖target − F_mean‖² / Σ‖predicted − F_mean‖²)
        over the held-out photos of train identities: eq. 4 with this δ gives the predictions the spread of the
        true names around F_mean. It is kept in the encoder (``name_delta``), so checkpoints and exported folders
        carry the δ of the weights they hold; the sanity check's untrained head does not set it. Unseen identities'
        ratio is logged too (``val_unseen/delta``), for comparison.
        """
        for split in VAL_SPLITS:
            # sums over every rank's photos (each photo is validated by exactly one rank)
            count, mse, cosine, top1, top5, target_spread, predicted_spread = self.trainer.strategy.reduce(
                self._sums[split].to(self.device), reduce_op="sum"
            ).tolist()
            if count == 0:
                continue
            metrics = {"mse": mse / count, "cosine": cosine / count, "top1": top1 / count, "top5": top5 / count}
            if predicted_spread > 0:
                metrics["delta"] = math.sqrt(target_spread / predicted_spread)
                if split == "heldout" and not self.trainer.sanity_checking:
                    self.encoder.name_delta.fill_(metrics["delta"])
            for name, value in metrics.items():
                self.log(f"val_{split}/{name}", value, sync_dist=False)
        self.log("val/chance", 1.0 / len(self.names))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The frozen towers are referenced by the config, not copied into every checkpoint; the global RNG is
        saved so that a resumed run draws what an uninterrupted one would (dropout)."""
        state = checkpoint["state_dict"]
        for key in [key for key in state if key.startswith("encoder.towers.")]:
            del state[key]
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        checkpoint[RECORD_KEY] = training_record(self.trainer)  # the exported folder's record (data set, run)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # checkpoints from before δ was calibrated resume with δ = 1 (eq. 4 off) until the next validation
        checkpoint["state_dict"].setdefault("encoder.name_delta", torch.ones(()))
        if self.encoder.towers is not None:
            for key, value in self.encoder.towers.state_dict().items():
                checkpoint["state_dict"].setdefault(f"encoder.towers.{key}", value)
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def configure_optimizers(self):
        hparams = self.hparams
        parameters = [p for p in self.encoder.head.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            parameters, lr=hparams.learning_rate, weight_decay=hparams.weight_decay, betas=tuple(hparams.betas)
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(hparams.warmup_steps, total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
            return hparams.min_lr_ratio + (1 - hparams.min_lr_ratio) * cosine

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
