# The familiar kubebuilder targets, as thin wrappers over the project's own commands (npm scripts, kubectl,
# docker). `make` or `make help` lists them. Every variable below can be overridden: `make deploy IMG=...`.
#
# A target shows up in `make help` when its rule line ends in `## <description>`; `##@ <title>` starts a group.

# The version of package.json: the tag of the images.
VERSION ?= $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' package.json)
# The operator image, as config/manager and the chart name it by default.
OPERATOR_REPOSITORY ?= ghcr.io/azure-pipelines-k8s-agent-scaler/operator
IMG ?= $(OPERATOR_REPOSITORY):$(VERSION)
# The agent image (images/agent).
AGENT_IMG ?= ghcr.io/azure-pipelines-k8s-agent-scaler/agent:$(VERSION)
# Extra arguments of `docker build`, e.g. --build-arg AGENT_VERSION=4.270.0 or --platform linux/arm64.
DOCKER_BUILD_ARGS ?=
CONTAINER_TOOL ?= docker
KUBECTL ?= kubectl
NPM ?= npm
# Node.js 24 from node_modules (npm ci installs it), whatever node the machine has.
NODE ?= npx node
# Arguments of the operator for `make run`, e.g. ARGS="--log-format text --watch-namespaces ci".
ARGS ?=

# bash with pipefail, so that a failing `kubectl kustomize` fails `make deploy`.
SHELL := bash
.SHELLFLAGS := -e -o pipefail -c

CRD_FILE := azurepipelines.k8s.scaler.io_autoscaledagents.yaml
CHART_DIR := charts/azure-pipelines-k8s-agent-scaler

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## List the targets with what they do.
	@awk 'BEGIN { FS = ":.*## " } \
	  /^##@ / { printf "\n%s\n", substr($$0, 5); next } \
	  /^[a-zA-Z0-9_.-]+:.*## / { printf "  %-22s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
	@printf '\nVariables (make VAR=value):\n  IMG=%s\n  AGENT_IMG=%s\n  CONTAINER_TOOL=%s KUBECTL=%s NPM=%s NODE=%s\n' \
	  '$(IMG)' '$(AGENT_IMG)' '$(CONTAINER_TOOL)' '$(KUBECTL)' '$(NPM)' '$(NODE)'

##@ Development

.PHONY: manifests
manifests: ## Regenerate the CRD from src/api/v1 into config/crd and the chart's crds/.
	$(NODE) src/api/v1/generate-crd.ts
	cp config/crd/$(CRD_FILE) $(CHART_DIR)/crds/$(CRD_FILE)

.PHONY: verify-manifests
verify-manifests: ## Fail when the committed CRD or the chart's copy is stale.
	$(NODE) src/api/v1/generate-crd.ts --check
	cmp config/crd/$(CRD_FILE) $(CHART_DIR)/crds/$(CRD_FILE)

.PHONY: fmt
fmt: ## Apply Biome's formatting and safe fixes (npm run format).
	$(NPM) run format

.PHONY: vet
vet: ## Type-check the sources (npm run typecheck).
	$(NPM) run typecheck

.PHONY: lint
lint: ## Lint and check formatting (npm run lint).
	$(NPM) run lint

.PHONY: test
test: ## Type-check, lint and run every test against the simulated control plane (npm test).
	$(NPM) test

.PHONY: test-unit
test-unit: ## Run the unit tests beside the code only (npm run test:unit).
	$(NPM) run test:unit

.PHONY: bench
bench: ## Run the benchmarks (npm run bench).
	$(NPM) run bench

##@ Simulation (no cluster needed)

.PHONY: demo
demo: ## Start the simulation, the operator and a job feed, and print what happens (npm run demo).
	$(NPM) run demo

.PHONY: sim-build
sim-build: ## Build (once, then cached) the simulated control plane from Go modules (npm run sim:build).
	$(NPM) run sim:build

.PHONY: sim-up
sim-up: ## Start the simulated world in the background; then: source .sim/env (npm run sim:up).
	$(NPM) run sim:up

.PHONY: sim-down
sim-down: ## Stop the simulated world and remove .sim (npm run sim:down).
	$(NPM) run sim:down

##@ Cluster (the current kubeconfig context)

.PHONY: install
install: ## Install the CRD into the cluster.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD from the cluster, and with it every AutoScaledAgent.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: run
run: ## Run the operator in the foreground (npm start; ARGS="..." passes flags).
	$(NPM) start $(if $(ARGS),-- $(ARGS))

.PHONY: deploy
deploy: ## Install the CRD, RBAC and the operator (config/default) with the image IMG.
	$(KUBECTL) kustomize config/default \
	  | sed 's|image: $(OPERATOR_REPOSITORY):.*$$|image: $(IMG)|' \
	  | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove what deploy installed, the CRD included (and so every AutoScaledAgent).
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Images

.PHONY: docker-build
docker-build: docker-build-operator docker-build-agent ## Build the operator image (IMG) and the agent image (AGENT_IMG).

.PHONY: docker-build-operator
docker-build-operator: ## Build the operator image IMG from images/operator.
	$(CONTAINER_TOOL) build $(DOCKER_BUILD_ARGS) -f images/operator/Dockerfile -t $(IMG) .

.PHONY: docker-build-agent
docker-build-agent: ## Build the agent image AGENT_IMG from images/agent.
	$(CONTAINER_TOOL) build $(DOCKER_BUILD_ARGS) -f images/agent/Dockerfile -t $(AGENT_IMG) .

.PHONY: docker-push
docker-push: ## Push IMG and AGENT_IMG.
	$(CONTAINER_TOOL) push $(IMG)
	$(CONTAINER_TOOL) push $(AGENT_IMG)
