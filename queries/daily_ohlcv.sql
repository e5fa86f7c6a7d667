-- name: daily_ohlcv
-- description: Daily OHLCV per symbol and session, aggregated from regular-hours 1m bars.
-- param symbol: one symbol, or NULL for all (default: NULL)
-- param start: first session date, e.g. 2024-07-01 (default: NULL)
-- param end: last session date, e.g. 2024-07-12 (default: NULL)
SELECT
    b.symbol,
    s.session,
    arg_min(b.open, b.ts) AS open,
    max(b.high) AS high,
    min(b.low) AS low,
    arg_max(b.close, b.ts) AS close,
    sum(b.volume) AS volume,
    count(*)::UINTEGER AS bars
FROM bars AS b
JOIN calendar_sessions AS s
    ON b.ts >= s.open AND b.ts < s.close
    AND NOT (s.break_start IS NOT NULL AND b.ts >= s.break_start AND b.ts < s.break_end)
WHERE b.interval = '1m'
    AND ($symbol IS NULL OR b.symbol = $symbol)
    AND ($start IS NULL OR s.session >= $start::DATE)
    AND ($end IS NULL OR s.session <= $end::DATE)
GROUP BY b.symbol, s.session
ORDER BY b.symbol, s.session
