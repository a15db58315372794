"""Operations on a whole archive: reindex, backup and restore, stats, recheck, takedown."""
