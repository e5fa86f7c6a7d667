-- name: quality_by_session
-- description: Bars present vs. expected per symbol, interval and session, against the exchange calendar.
-- param interval: bar interval, e.g. 1m
-- param symbol: one symbol, or NULL for all (default: NULL)
--
-- Expected slots are session-anchored bar opens: open + k * interval inside [open, close),
-- restarting at break_end after a lunch break; a 1d slot is the session date at 00:00 UTC,
-- a 1w slot the Monday of a week holding a session. Per symbol, only the sessions between
-- the sessions of its first and last bar of this interval count. Bars on no slot (extended
-- hours, off-grid stamps) do not count.
WITH spec AS (
    SELECT
        regexp_extract(trim($interval), '^([0-9]+)([smhdw])$', 2) AS unit,
        TRY_CAST(regexp_extract(trim($interval), '^([0-9]+)([smhdw])$', 1) AS INTEGER) AS n
),
step AS (
    SELECT
        CASE WHEN unit = '' OR n = 0 THEN error(
            'interval ' || $interval || ' is not valid: write a whole number and a unit, e.g. 30s, 1m, 5m, 1h, 1d'
        ) ELSE unit END AS unit,
        to_seconds(n * CASE unit WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 0 END) AS width
    FROM spec
),
chosen AS (
    SELECT symbol, ts
    FROM bars
    WHERE interval = $interval AND ($symbol IS NULL OR symbol = $symbol)
),
span AS (
    -- Intraday bars belong to sessions by the clock (a 20:00 ET post-market bar is on the
    -- next UTC date but in that day's session); daily and weekly bars carry their date.
    SELECT
        f.symbol,
        CASE WHEN step.unit IN ('s', 'm', 'h')
            THEN (SELECT min(cs.session) FROM calendar_sessions AS cs WHERE cs.close > f.first_ts)
            ELSE f.first_ts::DATE END AS first_day,
        CASE WHEN step.unit IN ('s', 'm', 'h')
            THEN (SELECT max(cs.session) FROM calendar_sessions AS cs WHERE cs.open <= f.last_ts)
            ELSE f.last_ts::DATE END AS last_day
    FROM (SELECT symbol, min(ts) AS first_ts, max(ts) AS last_ts FROM chosen GROUP BY symbol) AS f,
        step
),
segments AS (
    SELECT session, open AS seg_start, coalesce(break_start, close) AS seg_end
    FROM calendar_sessions
    UNION ALL
    SELECT session, break_end, close
    FROM calendar_sessions
    WHERE break_end IS NOT NULL
),
slots AS (
    SELECT seg.session, unnest(range(seg.seg_start, seg.seg_end, step.width)) AS ts
    FROM segments AS seg, step
    WHERE step.unit IN ('s', 'm', 'h')
    UNION ALL
    SELECT cs.session, cs.session::TIMESTAMPTZ AS ts
    FROM calendar_sessions AS cs, step
    WHERE step.unit = 'd'
    UNION ALL
    SELECT DISTINCT date_trunc('week', cs.session)::DATE, date_trunc('week', cs.session)::DATE::TIMESTAMPTZ
    FROM calendar_sessions AS cs, step
    WHERE step.unit = 'w'
),
grid AS (
    SELECT span.symbol, slots.session, slots.ts
    FROM span
    JOIN slots ON slots.session BETWEEN span.first_day AND span.last_day
),
hits AS (
    SELECT DISTINCT symbol, ts FROM chosen
)
SELECT
    grid.symbol,
    $interval AS interval,
    grid.session,
    count(*)::UINTEGER AS expected,
    count(hits.ts)::UINTEGER AS present,
    100.0::DOUBLE * count(hits.ts) / count(*) AS quality,
    count(hits.ts) = count(*) AS complete
FROM grid
LEFT JOIN hits ON hits.symbol = grid.symbol AND hits.ts = grid.ts
GROUP BY grid.symbol, grid.session
ORDER BY grid.symbol, grid.session
