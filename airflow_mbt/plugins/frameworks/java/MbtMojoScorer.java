// A long-lived MOJO scorer for airflow-mbt's h2o_automl framework (see h2o_scorer.py).
//
// Usage: java -cp h2o.jar:<dir of this class> MbtMojoScorer <model.zip> <threads>
// Prints a text header on stdout (URL-encoded, tab-separated fields), then serves batches:
//   request : int64 LE nrows (< 0 ends), then nrows * nfeatures float64 LE, column-major, in the
//             header's feature order; categorical features as their domain index, NaN = missing
//   response: nrows * predsSize float64 LE, row-major: GenModel.score0's output
// Scoring runs on <threads> threads, each with its own model instance (no shared state).
// Errors go to stderr and end the process with exit code 1.

import hex.genmodel.GenModel;
import hex.genmodel.MojoModel;

import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.URLEncoder;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public final class MbtMojoScorer {
    private static String enc(String s) {
        return URLEncoder.encode(s == null ? "" : s, StandardCharsets.UTF_8);
    }

    public static void main(String[] args) throws Exception {
        String path = args[0];
        int threads = Math.max(1, Integer.parseInt(args[1]));
        GenModel[] models = new GenModel[threads];
        for (int t = 0; t < threads; t++) {
            models[t] = MojoModel.load(path);
        }
        GenModel m = models[0];
        int nfeat = m.nfeatures();
        int rowLen = m.getNames().length;
        int npred = m.getPredsSize();
        String[] names = m.getNames();

        PrintStream header = new PrintStream(new BufferedOutputStream(System.out), false, StandardCharsets.UTF_8);
        header.print("category\t" + m.getModelCategory() + "\n");
        header.print("preds\t" + npred + "\n");
        StringBuilder response = new StringBuilder("response\t" + enc(m.getResponseName()));
        if (m.isSupervised() && m.isClassifier()) {
            for (String level : m.getDomainValues(m.getResponseIdx())) {
                response.append('\t').append(enc(level));
            }
        }
        header.print(response + "\n");
        for (int i = 0; i < nfeat; i++) {
            StringBuilder line = new StringBuilder("feature\t" + enc(names[i]));
            String[] domain = m.getDomainValues(i);
            if (domain != null) {
                line.append("\tenum");
                for (String level : domain) {
                    line.append('\t').append(enc(level));
                }
            } else {
                line.append("\treal");
            }
            header.print(line + "\n");
        }
        header.print("ready\n");
        header.flush();

        DataInputStream in = new DataInputStream(System.in);
        BufferedOutputStream out = new BufferedOutputStream(System.out, 1 << 20);
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        byte[] lenBytes = new byte[8];
        try {
            while (true) {
                try {
                    in.readFully(lenBytes);
                } catch (IOException eof) {
                    break;
                }
                long n = ByteBuffer.wrap(lenBytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
                if (n < 0) {
                    break;
                }
                final int rows = (int) n;
                byte[] raw = new byte[rows * nfeat * 8];
                in.readFully(raw);
                final double[] cols = new double[rows * nfeat];
                ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(cols);
                raw = null;
                final double[] result = new double[rows * npred];
                int per = (rows + threads - 1) / threads;
                List<Future<?>> parts = new ArrayList<>();
                for (int t = 0; t < threads; t++) {
                    final int lo = Math.min(rows, t * per);
                    final int hi = Math.min(rows, lo + per);
                    final GenModel model = models[t];
                    parts.add(pool.submit(() -> {
                        double[] row = new double[rowLen];
                        double[] preds = new double[npred];
                        for (int r = lo; r < hi; r++) {
                            for (int c = 0; c < nfeat; c++) {
                                row[c] = cols[c * rows + r];
                            }
                            for (int c = nfeat; c < rowLen; c++) {
                                row[c] = Double.NaN;
                            }
                            java.util.Arrays.fill(preds, 0.0);
                            model.score0(row, preds);
                            System.arraycopy(preds, 0, result, r * npred, npred);
                        }
                    }));
                }
                for (Future<?> part : parts) {
                    part.get();
                }
                ByteBuffer buf = ByteBuffer.allocate(result.length * 8).order(ByteOrder.LITTLE_ENDIAN);
                buf.asDoubleBuffer().put(result);
                out.write(buf.array());
                out.flush();
            }
        } finally {
            pool.shutdownNow();
        }
    }
}
