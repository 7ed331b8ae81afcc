-- Amounts are finite numbers in the API's range, whatever the column's type would allow.
-- PostgreSQL's numeric also holds 'NaN', 'Infinity' and '-Infinity'. So far 0001's CHECK refused
-- NaN and amounts <= 0, and numeric(14, 2) refused the infinities only through its precision.
-- This CHECK states the whole rule of the API (service/schemas.py, Money: > 0, at most
-- 999999999999.99) in one named constraint: NaN compares greater than every number and Infinity
-- is above the bound, so both fail it, as does -Infinity, even if the column's type is widened.
ALTER TABLE transactions
    ADD CONSTRAINT transactions_amount_range CHECK (amount > 0 AND amount <= 999999999999.99);
