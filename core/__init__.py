import zoneinfo

# Time zones come from the locked tzdata package only, never the host's database, so every
# worker computes the same deadlines and workflow replay stays deterministic across machines.
zoneinfo.reset_tzpath(to=())
