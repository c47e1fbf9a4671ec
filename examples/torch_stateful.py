"""Truncated BPTT and bucketing in PyTorch with statebatch (``python examples/torch_stateful.py``).

1. Many series of different lengths packed into 8 lanes of 25 steps, repacked every epoch; an LSTM
   carries its state from batch to batch, zeroed per lane where a new series starts; validation runs
   from zero and leaves the training state as it was.
2. Variable-length sequences bucketed by length for a DataLoader, packed for a GRU classifier.
"""

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader

import statebatch as sb
from statebatch import torch as sbt

rng = np.random.default_rng(0)
torch.manual_seed(0)


def noisy_sine(n):
    t = np.arange(n) * rng.uniform(0.05, 0.3)
    return (np.sin(t) + 0.1 * rng.standard_normal(n)).astype(np.float32)[:, None]


# ---------------------------------------------------------------- 1. stateful lanes, truncated BPTT
train = sb.arrange_stateful([noisy_sine(int(n)) for n in rng.integers(50, 300, 40)], timesteps=25,
                            batch_size=8, shuffle=True, seed=0)   # targets: the next step
val = sb.arrange_stateful([noisy_sine(int(n)) for n in rng.integers(50, 300, 8)], timesteps=25, batch_size=8)
train_loader = sbt.LaneLoader(train, prefetch=2)    # (x, y, weight, reset), strictly in order
val_loader = sbt.LaneLoader(val, validation=True)

lstm, head = nn.LSTM(1, 32, batch_first=True), nn.Linear(32, 1)
opt = torch.optim.Adam([*lstm.parameters(), *head.parameters()], lr=1e-2)
carrier = sbt.StateCarrier()                        # (h, c): detached, reset lanes zeroed


def weighted_mse(out, y, w):                        # weight 0 on padded steps
    return (((head(out) - y) ** 2).squeeze(-1) * w).sum() / w.sum()


for epoch in range(3):                               # every epoch repacks the lanes (new resets)
    for x, y, w, reset in train_loader:
        out, state = lstm(x, carrier(reset))
        carrier.update(state)
        loss = weighted_mse(out, y, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad(), carrier.validation(val_loader):   # training state saved, restored after
        losses = []
        for x, y, w, reset in val_loader:
            out, state = lstm(x, carrier(reset))
            carrier.update(state)
            losses.append(float(weighted_mse(out, y, w)))
    print(f"epoch {epoch}: train loss {loss.item():.4f}, validation loss {np.mean(losses):.4f}")

# ---------------------------------------------------------------- 2. bucketing for a DataLoader
seqs = [noisy_sine(int(n)) for n in rng.integers(5, 120, 300)]
labels = rng.integers(0, 2, 300)
bucketing = sb.bucket_batches(seqs, 32, targets=labels, seed=0)
dataset = sbt.SequenceDataset(bucketing)
sampler = sbt.BucketBatchSampler(bucketing)          # DDP: BucketBatchSampler(bucketing, num_replicas=R, rank=r)
loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=dataset.collate)
gru, clf = nn.GRU(1, 16, batch_first=True), nn.Linear(16, 2)
for epoch in range(2):
    sampler.set_epoch(epoch)                         # reshuffle, as with DistributedSampler
    for b in loader:
        _, h = gru(pack_padded_sequence(b.x, b.lengths, batch_first=True, enforce_sorted=False))
        loss = nn.functional.cross_entropy(clf(h[-1]), b.y)
print(f"bucketing: {len(sampler)} batches per epoch, {bucketing.padding_fraction:.1%} padding, last loss {loss.item():.3f}")
