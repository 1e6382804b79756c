"""The named GDFRNet configurations: every network the paper reports, as data.

This table is the single source of truth for variant names, their architecture
knobs and their one-line descriptions. The model builder, the CLI, the recipes'
validation, the TUI and the report all read it from here.

Each entry is a dict of `GDFRNet` keyword arguments (merged over `DEFAULTS`)
plus a `description`. Where a knob is absent the paper's GDFRNet value applies.
"""

from __future__ import annotations

# The paper's GDFRNet (Table 9 net5): ResNet-34 layout, FRRB with FRM at
# position C, two-level feature optimization branch, FGCM layout A, r=32, k=4.
DEFAULTS: dict = dict(
    stem="3x3",
    depths=(3, 4, 6, 3),
    widths=(64, 128, 256, 512),
    frm=True,
    frm_position="C",
    reduction=32,
    upsample="transposed",
    upsample_kernel=4,
    frm_downsample="depthwise",
    branch_depth=2,
    fgcm_layout="A",
    fom_similarity="global",
)

_NET5 = "GDFRNet as published: FRRB (FRM at C) + 2-level FGCM/FOM branch"

VARIANTS: dict[str, dict] = {
    "gdfrnet": dict(description=_NET5),
    # Table 9: the ablation ladder.
    "net1": dict(
        stem="7x7", frm=False, branch_depth=0,
        description="ResNet-34 baseline: 7x7 stride-2 stem + max-pool, plain blocks",
    ),
    "net2": dict(
        frm=False, branch_depth=0,
        description="CIFAR ResNet-34: 3x3 stem, no max-pool, plain blocks",
    ),
    "net3": dict(branch_depth=0, description="net2 + FRRB (FRM at C), no branch"),
    "net4": dict(frm=False, description="net2 + feature optimization branch, plain blocks"),
    "net5": dict(description=_NET5 + " (= gdfrnet)"),
    # Section 1.2 / Table 8 reconciliation: the dense reading of FRM's down-sampling.
    "gdfrnet-dense": dict(
        frm_downsample="dense",
        description="GDFRNet with a full 3x3 stride-2 conv in FRM (the reading that matches Table 8)",
    ),
    # Section 2.2.3 / Fig. 10: bilinear instead of transposed-conv up-sampling.
    "bilinear": dict(upsample="bilinear", description="GDFRNet with bilinear up-sampling in FRM (Fig. 10 net1)"),
    # FOM option: per-pixel similarity refinement (documented deviation, not in the paper).
    "fom-local": dict(
        fom_similarity="local",
        description="GDFRNet with a per-pixel (CBAM-style) FOM refinement instead of eqs. 25-28",
    ),
    # The test/smoke model: every module, narrow and shallow.
    "tiny": dict(
        depths=(1, 1, 1, 1), widths=(16, 32, 64, 128), reduction=8,
        description="narrow, shallow GDFRNet with every module (0.71 M params) for tests and smoke runs",
    ),
}

# Table 9's ladder at `tiny`'s widths (16-128, one block a stage, FRM r=8): the networks
# the project trains on a CPU (docs/results). tiny-net5 is `tiny` under its ladder name.
_TINY = {k: VARIANTS["tiny"][k] for k in ("depths", "widths", "reduction")}
for _net in ("net2", "net3", "net4", "net5"):
    _knobs = {k: v for k, v in VARIANTS[_net].items() if k != "description"}
    _what = "= tiny" if _net == "net5" else VARIANTS[_net]["description"].split(": ", 1)[-1]
    VARIANTS[f"tiny-{_net}"] = dict(
        _TINY, **_knobs, description=f"{_net} at tiny's widths 16-128, one block a stage, r=8 ({_what})"
    )

# The paper's grids that have no accuracy table (paper_results.json holds Tables 4-9's rows):
# name -> variants, read by `gdfr sweep --table` (keras_gdfr/report/tables.py).
_TCONV_KERNELS = (2, 4, 6, 8, 10)
_REDUCTIONS = (2, 4, 8, 16, 32)
GRIDS_WITHOUT_NUMBERS: dict[str, tuple[str, ...]] = {
    "3": tuple(f"tconv-k{_k}" for _k in _TCONV_KERNELS),
    "fig8": tuple(f"r{_r}" for _r in _REDUCTIONS),
}

# Table 3: transposed-conv kernel k (stride 2, padding (k-2)/2).
for _k in _TCONV_KERNELS:
    VARIANTS[f"tconv-k{_k}"] = dict(
        upsample_kernel=_k,
        description=f"GDFRNet with FRM transposed conv k={_k}, s=2, p={(_k - 2) // 2} (Table 3 scheme {_k // 2})",
    )

# Table 4: FRM position inside the residual block; Table 5: FGCM layout in the branch.
_SCHEMES = {
    ("frm", "frm_position", 4): {
        "A": "FRM before the block's first conv",
        "B": "FRM after the first conv-BN-ReLU",
        "C": "FRM after the second conv-BN, before the add (paper's choice)",
        "D": "FRM on the shortcut path",
    },
    ("fgcm", "fgcm_layout", 5): {
        "A": "FGCM before both FOMs (paper's choice)",
        "B": "FGCM only before the first FOM",
        "C": "FGCM only before the second FOM",
        "D": "FGCM before both FOMs and on the stage-3 down-sampling path",
    },
}
for (_prefix, _knob, _table), _schemes in _SCHEMES.items():
    for _p, _what in _schemes.items():
        VARIANTS[f"{_prefix}-{_p.lower()}"] = {_knob: _p, "description": f"Table {_table} scheme {_p}: {_what}"}

# Table 6: number of FGCM+FOM levels in the branch.
for _d, _p in enumerate("ABCD"):
    VARIANTS[f"branch-{_p.lower()}"] = dict(
        branch_depth=_d,
        description=f"Table 6 scheme {_p}: {_d} FGCM+FOM level{'s' if _d != 1 else ''}"
        + (" (no branch, = net3)" if _d == 0 else " (paper's choice)" if _d == 2 else ""),
    )

# Fig. 8: attention reduction ratio r.
for _r in _REDUCTIONS:
    VARIANTS[f"r{_r}"] = dict(
        reduction=_r, description=f"GDFRNet with FRM reduction r={_r} (Fig. 8)"
    )


def list_variants() -> dict[str, str]:
    """Every named variant with its one-line description, in table order."""
    return {name: spec["description"] for name, spec in VARIANTS.items()}


def variant_config(name: str) -> dict:
    """The full `GDFRNet` keyword arguments of a named variant.

    Raises:
        ValueError: for an unknown name, listing the close matches.
    """
    if name not in VARIANTS:
        import difflib

        close = difflib.get_close_matches(name, VARIANTS, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown GDFRNet variant {name!r}.{hint} "
            f"Known variants: {', '.join(VARIANTS)}. Received: variant={name!r}"
        )
    config = dict(DEFAULTS)
    config.update({k: v for k, v in VARIANTS[name].items() if k != "description"})
    return config
