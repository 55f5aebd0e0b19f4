# stratmancer-jobs: the job runner as a container (ENTRYPOINT stratmancer-jobs; default command: status).
# Build: docker build -t stratmancer-jobs:$(git describe --always) .
# Run a job: docker run --rm -v /srv/stratmancer:/srv/stratmancer stratmancer-jobs refresh-history
# The deployment root is a volume at /srv/stratmancer; the image itself holds no state and can run with a
# read-only root filesystem (only /tmp and the volume are written). Kubernetes: `stratmancer-jobs kubernetes`.

# build stage: a wheel from the repository (setuptools comes from the isolated build environment)
FROM python:3.12.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stratmancer_jobs/ ./stratmancer_jobs/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# runtime stage: the package and its dependencies only, run as an unprivileged user
FROM python:3.12.11-slim-bookworm
LABEL org.opencontainers.image.title="stratmancer-jobs" \
      org.opencontainers.image.description="Cron-driven maintenance jobs for StratMancer" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STRATMANCER_HOME=/srv/stratmancer
# uid/gid 10001 match the CronJobs' runAsUser/runAsGroup; the root directory is the volume's mount point
RUN groupadd --system --gid 10001 stratmancer \
    && useradd --system --uid 10001 --gid stratmancer --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin stratmancer \
    && mkdir -p /srv/stratmancer \
    && chown 10001:10001 /srv/stratmancer
COPY --from=build /wheels/ /tmp/wheels/
RUN pip install --no-cache-dir /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels
WORKDIR /srv/stratmancer
USER 10001:10001
ENTRYPOINT ["stratmancer-jobs"]
CMD ["status"]
