// GET a URL with java.net.http.HttpClient following redirects (Redirect.NORMAL), write the
// body to a file, print "status redirectStatus finalUri". Usage: java Fetch.java URL API_KEY OUTPUT
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;

public class Fetch {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newBuilder()
                .followRedirects(HttpClient.Redirect.NORMAL)
                .build();
        HttpRequest request = HttpRequest.newBuilder(URI.create(args[0]))
                .header("X-Api-Key", args[1])
                .GET()
                .build();
        HttpResponse<Path> response =
                client.send(request, HttpResponse.BodyHandlers.ofFile(Path.of(args[2])));
        int redirect = response.previousResponse().map(HttpResponse::statusCode).orElse(0);
        System.out.println(response.statusCode() + " " + redirect + " " + response.uri());
    }
}
