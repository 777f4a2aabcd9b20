package state

import (
	"context"
	"fmt"
	"strconv"
)

// renderCacheKey is the meta row naming the render cache file (reconcile's) that holds
// for the current state version: its random token.
const renderCacheKey = "render_cache"

// RenderCacheToken returns the state version and the token of the render cache written
// for it ("" when none), read in one transaction: a cache file is trusted only when both
// match its header. Why a token and not the version alone: a database restored from a
// backup, or made anew at the same path, can reach the same version with other content.
func (db *DB) RenderCacheToken(ctx context.Context) (version int64, token string, err error) {
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return 0, "", fmt.Errorf("read render cache token: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT key, value FROM meta WHERE key IN ('state_version', ?)`, renderCacheKey)
	if err != nil {
		return 0, "", fmt.Errorf("read render cache token: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return 0, "", fmt.Errorf("read render cache token: %w", err)
		}
		if k == renderCacheKey {
			token = v
		} else if version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, "", fmt.Errorf("read render cache token: state version %q: %w", v, err)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, "", fmt.Errorf("read render cache token: %w", err)
	}
	return version, token, nil
}

// SetRenderCacheToken records token as the render cache of state version, only while the
// state is still at version (false otherwise: another write came first and the file
// describes a state that is gone). It changes no state version: the cache is no state.
func (db *DB) SetRenderCacheToken(ctx context.Context, version int64, token string) (bool, error) {
	res, err := db.ExecContext(ctx, `INSERT INTO meta(key, value) SELECT ?, ?
		WHERE coalesce((SELECT value FROM meta WHERE key = 'state_version'), '0') = ?
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, renderCacheKey, token, strconv.FormatInt(version, 10))
	if err != nil {
		return false, fmt.Errorf("write render cache token: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("write render cache token: %w", err)
	}
	return n > 0, nil
}
