"""Write ``tests/data/tiny_coco_fit.pth``: the tiny test model (ViTPose-B simple at width 32, 2
blocks, 2 heads, 64x48 input) fitted to the ground-truth people of the COCO sample and their
mirrors, so that `vitpose test` on the sample gives non-zero AP with the flip test (random
weights give AP 0, which would make comparisons of metrics say nothing).

Adam on the UDP Gaussian targets of the ground-truth crops (no other augmentation), weights
stored in float16 (about 120 kB). It only has to be deterministic enough to be useful, not
reproducible bit for bit: the tests compare engines and code paths on it, never its numbers.

    python tests/tools/tiny_coco_fit.py [--data ../shared/data] [--steps 1500] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import vitpose
from vitpose.dataset_meta import get_dataset_meta
from vitpose.datasets.readers import read_annotations
from vitpose.datasets.topdown import TopDownDataset

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from tiny_models import randomize  # noqa: E402


def crops_and_targets(data: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Normalised ground-truth crops, their targets and target weights, and their mirrors."""
    meta = get_dataset_meta("coco")
    records = read_annotations("coco", data / "coco" / "test_coco.json",
                               image_root=data / "coco", input_size_hw=(64, 48))
    ds = TopDownDataset(records, meta, (64, 48), train=False)
    items = [ds[i] for i in range(len(ds))]
    x = torch.stack([it["image"] for it in items])
    y = torch.stack([it["target"] for it in items])
    w = torch.stack([it["target_weight"] for it in items]).reshape(len(items), -1, 1, 1)
    flip = list(meta.flip_indices)
    # UDP: the mirror of a crop has the mirrored heatmaps, left and right keypoints swapped
    return (torch.cat([x, x.flip(3)]), torch.cat([y, y.flip(3)[:, flip]]),
            torch.cat([w, w[:, flip]]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "tiny_coco_fit.pth")
    args = p.parse_args()
    torch.manual_seed(0)
    x, y, w = crops_and_targets(args.data)
    model = randomize(vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2,
                                          num_heads=2, img_size=(64, 48)), seed=3).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    t0 = time.perf_counter()
    for step in range(args.steps):
        loss = (((model(x) - y) ** 2) * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.6f} ({time.perf_counter() - t0:.0f} s)")
    vitpose.save_checkpoint(model.eval().half(), args.out)
    print(f"written {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
