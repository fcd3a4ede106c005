"""A simulate() call run as its own process, so tests can kill it: PATH N BATCH."""

import sys

from prospect_sbi import BC03MilesBasis, build_model, jades_filters, simulate

if __name__ == "__main__":
    path, n, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    model = build_model("continuity_sfh", zred=(0.5, 6.0), nbins=4)
    simulate(
        model,
        BC03MilesBasis(),
        jades_filters(),
        n,
        path,
        seed=3,
        batch_size=batch,
        method="generic",
        progress=False,
    )
