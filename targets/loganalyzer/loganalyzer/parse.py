"""One access-log line in an extended combined format:

203.0.113.7 - alice [12/Mar/2026:14:02:11 +0000] "GET /api/orders?id=3 HTTP/1.1" 200 512 "-" "curl/8.0" 0.043
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

LINE = r'(\S+) \S+ (\S+) \[([^\]]+)\] "(\S+) (\S+) ([^"]+)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)" ([0-9.]+)'


@dataclass(frozen=True)
class Record:
    ip: str
    user: str
    time: datetime
    method: str
    path: str
    status: int
    size: int
    referrer: str
    agent: str
    latency: float

    @property
    def endpoint(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]


def parse_line(line: str) -> Record | None:
    """The record of one line, or None when the line is not a well-formed entry."""
    m = re.match(LINE, line)
    if m is None:
        return None
    ip, user, stamp, method, path, _proto, status, size, referrer, agent, latency = m.groups()
    when = datetime.strptime(stamp.split(" ")[0], "%d/%b/%Y:%H:%M:%S")
    return Record(
        ip=ip,
        user=user,
        time=when,
        method=method,
        path=path,
        status=int(status),
        size=0 if size == "-" else int(size),
        referrer=referrer,
        agent=agent,
        latency=float(latency),
    )
