-- name: audit_bars
-- description: Stored bars that break a bar rule (OHLC order, positive prices, non-negative volume).
-- param interval: bar interval, e.g. 1m
-- param symbol: one symbol, or NULL for all (default: NULL)
--
-- The stored-data side of pipeline/validate.py: one row per broken rule per bar, with
-- the rule name as validate.py spells it. The importer refuses such rows, so on a
-- healthy store this returns nothing.
WITH chosen AS (
    SELECT interval, symbol, ts, open, high, low, close, volume
    FROM bars
    WHERE interval = $interval AND ($symbol IS NULL OR symbol = $symbol)
),
broken AS (
    SELECT *, 'positive_price' AS rule,
        'a price is zero or negative' AS detail
    FROM chosen
    WHERE open <= 0 OR high <= 0 OR low <= 0 OR close <= 0
    UNION ALL
    SELECT *, 'ohlc_order' AS rule,
        'low <= min(open, close) <= max(open, close) <= high does not hold' AS detail
    FROM chosen
    WHERE NOT (low <= least(open, close) AND greatest(open, close) <= high)
    UNION ALL
    SELECT *, 'volume' AS rule,
        'volume is negative or missing' AS detail
    FROM chosen
    WHERE volume < 0 OR volume IS NULL
)
SELECT interval, symbol, ts, open, high, low, close, volume, rule, detail
FROM broken
ORDER BY symbol, ts, rule
