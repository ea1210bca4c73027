"""Two-step channel pruning guided by a per-layer sensitivity analysis (paper Section II-B).

``groups`` finds what moves together, ``surgery`` removes channels, ``sensitivity`` scores each
layer pruned alone, ``ratios`` turns the curves into per-layer ratios for a FLOPs target,
``acceptance`` judges a pruned model, and ``iterative`` runs one iteration and assembles the final
model.
"""
