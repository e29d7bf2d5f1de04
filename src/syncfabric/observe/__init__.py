"""What the product measures about itself: freshness, completeness, throughput, quarantine and dead letters.

Read from the store (the delivery log, the run history, quarantine and dead letters); shown by
``syncfabric status`` and exported as Prometheus metrics (``syncfabric metrics``). Definitions: docs/observe.md.
"""
