# Our broker and the sales-event programs in one image.
#
#   docker build -t sales-events .
#   docker run --rm -p 5672:5672 -p 15672:15672 -p 15692:15692 sales-events   # the broker
#   docker run --rm --network host sales-events producer --count 5      # a program
#
# docker-compose.yml builds it for the `broker` service and for the consumers and the producer.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p broker -p brokerctl -p clients --bins \
    && mkdir -p /out \
    && cp target/release/broker target/release/brokerctl target/release/producer \
          target/release/email_consumer target/release/loyalty_consumer target/release/consumer /out/

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /data app \
    && mkdir -p /data/outbox /data/ledger \
    && chown -R app:app /data
COPY --from=build /out/ /usr/local/bin/
# RabbitMQ's health check command, as compose files and Kubernetes probes run it.
RUN ln -s brokerctl /usr/local/bin/rabbitmq-diagnostics
USER app
WORKDIR /data
EXPOSE 5672 15672 15692
CMD ["broker"]
