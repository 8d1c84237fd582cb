# Bar chart of rps relative to direct redis, one cluster per shape and test.
# Called by bench.sh: gnuplot -e "datafile='..'; outfile='..'; ncols=N; subtitle='..'" chart.gp
# datafile: tab-separated, columns shape, test, then one ratio per target (ncols in all).
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output outfile
set title "rps relative to direct redis (1.0 = as fast as no proxy; higher is better)\n".subtitle
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set offsets 0,0,0.15,0
set ytics 0.1
set grid ytics
set key top right horizontal
set xtics nomirror
set bmargin 4
set ylabel "rps / rps(direct)"
set datafile separator "\t"
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 1.5 lc rgb "black"
plot for [i=3:ncols] datafile using i:xtic(strcol(1)."\n".strcol(2)) title columnheader(i)
