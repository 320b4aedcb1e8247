"""The LightningModule: the name encoder's head learns, the CLIP towers stay frozen, MSE on (N, D) names.

Validation runs on held-out photos of train identities and on photos of unseen identities: MSE, cosine, and top-1 /
top-5 retrieval of the right name among all identities' names (faiss inner product on normalised names).
"""

from __future__ import annotations

import math

import faiss
import lightning as L
import torch
from torch import nn

from namespace import NameEncoder, NameEncoderConfig

VAL_SPLITS = ("heldout", "unseen")


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
        self.register_buffer("names", torch.zeros(0), persistent=False)  # (M, N, D) targets, set in setup
        self._outputs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {split: [] for split in VAL_SPLITS}

    def setup(self, stage: str) -> None:
        """Reads the data through the datamodule, checks it against the encoder, stores the name statistics."""
        config = self.encoder.config
        data = self.trainer.datamodule.load(config.num_tokens, config.width, config.feature_dim)
        self.names = data.names.to(self.device)
        self.encoder.set_statistics(data.statistics)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.encoder(features)

    def _predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.encoder(batch["features"])  # (B, F) → (B, N, D)

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        predicted = self._predict(batch)
        loss = nn.functional.mse_loss(predicted.float(), self.names[batch["name_row"]])
        self.log("train/loss", loss, prog_bar=True, batch_size=predicted.shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_index: int, dataloader_idx: int = 0) -> None:
        predicted = self._predict(batch).float()
        self._outputs[VAL_SPLITS[dataloader_idx]].append((predicted.flatten(1), batch["name_row"]))

    def on_validation_epoch_end(self) -> None:
        candidates = nn.functional.normalize(self.names.flatten(1), dim=1).cpu().numpy()  # (M, N·D)
        index = faiss.IndexFlatIP(candidates.shape[1])
        index.add(candidates)
        for split in VAL_SPLITS:
            outputs = self._outputs[split]
            self._outputs[split] = []
            if not outputs:
                continue
            predicted = self.all_gather(torch.cat([p for p, _ in outputs])).reshape(-1, candidates.shape[1])
            rows = self.all_gather(torch.cat([r for _, r in outputs])).reshape(-1)
            targets = self.names[rows].flatten(1)
            metrics = {
                "mse": nn.functional.mse_loss(predicted, targets),
                "cosine": nn.functional.cosine_similarity(predicted, targets, dim=1).mean(),
            }
            _, found = index.search(nn.functional.normalize(predicted, dim=1).cpu().numpy(), min(5, len(candidates)))
            hits = torch.from_numpy(found) == rows.cpu()[:, None]
            metrics["top1"] = hits[:, 0].float().mean()
            metrics["top5"] = hits.any(dim=1).float().mean()
            for name, value in metrics.items():
                self.log(f"val_{split}/{name}", value.to(self.device), sync_dist=False, rank_zero_only=False)
        self.log("val/chance", torch.tensor(1.0 / len(candidates), device=self.device))

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
