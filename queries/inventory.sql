-- name: inventory
-- description: What the store holds: first and last bar and row count per interval and symbol.
-- param interval: only this interval, e.g. 1m, or NULL for all (default: NULL)
SELECT
    interval,
    symbol,
    min(ts) AS first,
    max(ts) AS last,
    count(*)::UBIGINT AS rows
FROM bars
WHERE $interval IS NULL OR interval = $interval
GROUP BY interval, symbol
ORDER BY interval, symbol
