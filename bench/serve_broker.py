"""Start ``rsb serve`` with bench-only variations, in the same process as the real command.

``python -m bench.serve_broker --lift-rate-limits serve --db ... --port ...``

``--lift-rate-limits`` raises the per-connection binary message limits of the relay
(``broker.relay.limits.BINARY_RATE``: 5,000 msg/s for an agent, 1,000 msg/s for a viewer as
shipped) so that a throughput test measures the relay's ceiling rather than the limit.

Without it the bench starts the broker exactly as production does (``python -m broker.cli
serve``, which picks uvloop itself, see broker/event_loop.py); this wrapper is used only for
the variant it names. Either way the broker is served by ``rsb serve``'s own runner
(``broker.api.server.BrokerRunner``), so the bench's access log, like production's, holds paths
without query strings.
"""

from __future__ import annotations

import sys

LIFTED = (1e9, 1e9)


def main(argv: list[str]) -> int:
    args = list(argv)
    if "--lift-rate-limits" in args:
        args.remove("--lift-rate-limits")
        try:
            from broker.relay import limits
        except ImportError:  # a broker from before the limits had their own module
            from broker.relay import handlers as limits  # type: ignore[no-redef]

        for kind in ("agent", "viewer"):
            limits.BINARY_RATE[kind] = LIFTED
    from broker.cli import main as rsb_main

    return int(rsb_main(args) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
