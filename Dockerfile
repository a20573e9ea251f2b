# Image used by the Helm chart: `relais serve`, `relais worker` or `relais migrate`.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY core core
COPY tenants tenants
COPY plugins plugins
COPY migrations migrations
RUN pip install --no-cache-dir . && useradd --system relais
USER relais
ENV RELAIS_HOST=0.0.0.0
ENTRYPOINT ["relais"]
CMD ["serve"]
