-- name: gappers
-- description: Symbols whose last session before a session opened more than a threshold away from the close before it.
-- param session: the session scanned for, e.g. 2024-07-08; only the sessions before it count
-- param threshold: the smallest |open / previous close - 1| that counts, e.g. 0.03 for 3% (default: 0.03)
--
-- A pre-session scanner (pipeline/scanner.py) over daily bars. It uses history only: the
-- gap is that of the last session before `session` (its 1d open against the 1d close of
-- the session before that), not the scanned session's own open, which is not known yet.
-- Ranked by the size of the gap, largest first; ties go to the symbol that sorts first.
WITH days AS (
    SELECT session
    FROM calendar_sessions
    WHERE session < $session::DATE
    ORDER BY session DESC
    LIMIT 2
),
daily AS (
    SELECT b.symbol, (b.ts AT TIME ZONE 'UTC')::DATE AS session, b.open, b.close
    FROM bars AS b
    WHERE b.interval = '1d' AND (b.ts AT TIME ZONE 'UTC')::DATE IN (SELECT session FROM days)
),
pairs AS (
    SELECT
        cur.symbol,
        cur.session,
        cur.open / prev.close - 1 AS gap
    FROM daily AS cur
    JOIN daily AS prev ON prev.symbol = cur.symbol AND prev.session < cur.session
    WHERE cur.session = (SELECT max(session) FROM days)
)
SELECT symbol, session, gap
FROM pairs
WHERE abs(gap) > $threshold::DOUBLE
ORDER BY abs(gap) DESC, symbol
