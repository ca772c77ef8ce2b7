"""Deterministic synthetic access logs (the benchmark's and the tests' input)."""

from __future__ import annotations

import random

METHODS = ["GET"] * 8 + ["POST", "PUT", "DELETE"]
ENDPOINTS = ["/", "/login", "/logout", "/api/orders", "/api/orders/items", "/api/users", "/api/search",
             "/static/app.js", "/static/style.css", "/health", "/api/cart", "/api/checkout", "/docs/intro"]
STATUSES = [200] * 30 + [201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.4.0", "python-requests/2.31", "Go-http-client/1.1",
          "Mozilla/5.0 (Macintosh)", "okhttp/4.12"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def lines(n: int, seed: int = 1, visitors: int = 600, malformed: float = 0.002) -> list[str]:
    rng = random.Random(seed)
    ips = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(visitors)]
    users = ["-"] * 5 + ["alice", "bob", "carol", "dave"]
    out = []
    for i in range(n):
        if rng.random() < malformed:
            out.append(f"garbage line {i} without structure")
            continue
        day, hour, minute, sec = 1 + i * 28 // n, rng.randrange(24), rng.randrange(60), rng.randrange(60)
        path = rng.choice(ENDPOINTS)
        if rng.random() < 0.3:
            path += f"?id={rng.randrange(1000)}"
        size = "-" if rng.random() < 0.05 else str(rng.randrange(50, 50_000))
        out.append(
            f'{rng.choice(ips)} - {rng.choice(users)} [{day:02d}/{MONTHS[(seed + day) % 12]}/2026:{hour:02d}:{minute:02d}:{sec:02d} +0000] '
            f'"{rng.choice(METHODS)} {path} HTTP/1.1" {rng.choice(STATUSES)} {size} "-" "{rng.choice(AGENTS)}" '
            f"{rng.lognormvariate(-3, 0.8):.3f}"
        )
    return out
