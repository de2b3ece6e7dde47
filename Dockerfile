# Karasu image: build the TypeScript, keep only production dependencies.
#   docker build -t karasu .
#   docker run -p 8080:8080 -v $PWD/config/docker.yaml:/config/karasu.yaml:ro karasu
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json ./
COPY bin ./bin
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
CMD ["node", "bin/karasu.js", "serve", "-c", "/config/karasu.yaml"]
