"""Network studies: sites run one study specification on their own warehouses and share only
disclosure-controlled aggregates (:mod:`.package`); a coordinating centre checks and pools them
(:mod:`.combine`). No row leaves a site."""
