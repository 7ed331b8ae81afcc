-- Admitting a login token in the round trip of the request's first statement (issue 17).
--
--   admit_login_token(user_id, token_version, jti)  returns nothing when the token may be used;
--                       raises SQLSTATE FT401 ('no_user': its user is gone; 'revoked': a password
--                       change moved the user's token version past the token's, or a logout put its
--                       id in revoked_tokens). The service sends it ahead of a request's first
--                       statement in one pipeline, in one transaction: when it raises, PostgreSQL
--                       skips that statement, so a revoked token reads nothing and writes nothing.
--
-- Expand-only: a new function; the previous release's query reads the same two tables.

CREATE FUNCTION admit_login_token(p_user_id bigint, p_token_version integer, p_jti text)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    current_version integer;
BEGIN
    SELECT token_version INTO current_version FROM users WHERE id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'FT401', MESSAGE = 'no_user';
    END IF;
    IF current_version <> p_token_version OR EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = p_jti) THEN
        RAISE EXCEPTION USING ERRCODE = 'FT401', MESSAGE = 'revoked';
    END IF;
END
$$;
