// CUDA backend: graphs. begin_capture puts the stream in capture mode (thread-local: a
// synchronizing or allocating call from this thread fails the capture instead of running), the
// ops queue their kernels and cuBLASLt calls as usual, end_capture instantiates the recorded graph
// and replay launches it on the stream. model/decode_graph.h decides what is captured.
#include <memory>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"

namespace densekv {

namespace {

class CudaGraph final : public BackendGraph {
 public:
  explicit CudaGraph(cudaGraphExec_t exec) : exec_(exec) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec_); }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  cudaGraphExec_t exec() const { return exec_; }

 private:
  cudaGraphExec_t exec_;
};

}  // namespace

void CudaBackend::begin_capture() {
  CHECK_MSG(!capturing_, "begin_capture while already capturing");
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
}

std::unique_ptr<BackendGraph> CudaBackend::end_capture() {
  CHECK_MSG(capturing_, "end_capture without begin_capture");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  CUDA_CHECK(err);
  return std::make_unique<CudaGraph>(exec);
}

void CudaBackend::replay(BackendGraph& graph) {
  CHECK_MSG(!capturing_, "replay while capturing a graph");
  auto* g = dynamic_cast<CudaGraph*>(&graph);
  CHECK_MSG(g != nullptr, "replay of a graph this backend did not capture");
  CUDA_CHECK(cudaGraphLaunch(g->exec(), stream_));
}

}  // namespace densekv
