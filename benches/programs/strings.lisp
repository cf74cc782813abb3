(defun digits (n)
  (let ((s "")) (dotimes (i n s) (setf s (concatenate 'string s (princ-to-string (rem i 10)))))))
(defun run (k total) (if (= k 0) total (run (- k 1) (+ total (length (digits 300))))))
(format t "~a~%" (run 3000 0))
